//! Generates the tonic/prost code from `airlock/v1/*.proto`.
//!
//! protoc comes from the `protoc-bin-vendored` crate, pinned in Cargo.lock, so the
//! build needs no system protoc and is reproducible.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    set_protoc(&protoc);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "airlock/v1/common.proto",
        "airlock/v1/jobs.proto",
        "airlock/v1/runners.proto",
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("airlock_v1_descriptor.bin"))
        .compile_protos(&protos, &["."])?;
    Ok(())
}

/// Points tonic-prost-build (which reads `PROTOC`) at the vendored binary.
fn set_protoc(protoc: &std::path::Path) {
    #[allow(unsafe_code)]
    // SAFETY: build scripts are single-threaded; nothing reads the environment concurrently.
    unsafe {
        std::env::set_var("PROTOC", protoc);
    }
}
