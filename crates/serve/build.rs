//! Generates the gRPC server and client code of `proto/roma/v1/` (with Debian's `protoc`,
//! which `cargo xtask setup` installs): `roma.proto`, the service roma serves, and
//! `host_function.proto`, the service config-declared bindings call; and the descriptor set
//! that server reflection serves.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    const PROTOS: [&str; 2] = [
        "proto/roma/v1/roma.proto",
        "proto/roma/v1/host_function.proto",
    ];
    println!("cargo:rerun-if-changed=build.rs");
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    tonic_prost_build::configure()
        // Clients are built on a channel the caller makes: no `connect` helpers.
        .build_transport(false)
        .file_descriptor_set_path(out.join("roma_v1_descriptor.bin"))
        .compile_protos(&PROTOS, &["proto"])?;
    Ok(())
}
