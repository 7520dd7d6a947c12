//! Turning the CODE argument (a .js or .wasm file, plus an optional WASM binary for JS) into a
//! code object.

use anyhow::{Context, Result, bail};
use roma::CodeObject;
use std::path::{Path, PathBuf};

/// The built-in hello world of `roma bench`.
pub const HELLO_JS: &str =
    r#"function Handler(input) { return "Hello world! " + JSON.stringify(input); }"#;

/// Reads `path` into a code object of version `version`. A `.wasm` file is standalone WASM;
/// anything else is JavaScript, with `wasm_bin` exposed to it as the global `wasm_array_name`.
pub fn read_code(
    path: &Path,
    version: &str,
    wasm_bin: Option<&PathBuf>,
    wasm_array_name: Option<&str>,
) -> Result<CodeObject> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let id = path
        .file_stem()
        .map_or_else(|| "code".into(), |s| s.to_string_lossy().into_owned());
    let mut code = CodeObject {
        id,
        version_string: version.into(),
        ..Default::default()
    };
    if path.extension().is_some_and(|e| e == "wasm") {
        if wasm_bin.is_some() {
            bail!("--wasm-bin goes with a .js file, not with a .wasm file");
        }
        code.wasm = bytes;
        return Ok(code);
    }
    code.js = String::from_utf8(bytes)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
    match (wasm_bin, wasm_array_name) {
        (Some(bin), Some(name)) => {
            code.wasm_bin =
                std::fs::read(bin).with_context(|| format!("cannot read {}", bin.display()))?;
            code.tags
                .insert(roma::WASM_ARRAY_NAME_TAG.into(), name.to_owned());
        }
        (Some(_), None) => bail!("--wasm-bin needs --wasm-array-name"),
        (None, Some(_)) => bail!("--wasm-array-name needs --wasm-bin"),
        (None, None) => {}
    }
    Ok(code)
}
