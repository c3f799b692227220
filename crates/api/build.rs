//! Generates the gRPC code from `proto/` at build time, with `protoc` from the
//! `protoc-bin-vendored` crate: nothing needs to be installed on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Only this build script's process sees it.
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=../../proto");
    tonic_prost_build::configure()
        .compile_protos(&["../../proto/concord.proto"], &["../../proto"])?;
    Ok(())
}
