//! Generates the gRPC server and client code of `proto/roma/v1/roma.proto` (with Debian's
//! `protoc`, which `cargo xtask setup` installs), and the descriptor set that server
//! reflection serves.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto/roma/v1/roma.proto");
    tonic_prost_build::configure()
        // Clients connect through any channel; the server crate builds no tonic transport client.
        .build_transport(false)
        .file_descriptor_set_path(out.join("roma_v1_descriptor.bin"))
        .compile_protos(&["proto/roma/v1/roma.proto"], &["proto"])?;
    Ok(())
}
