//! Compiles the vendored `.proto` files with `protox`, a pure-Rust protobuf
//! compiler, so that a fresh machine builds the crate without a system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    println!("cargo:rerun-if-changed={}", root.display());

    // Jaeger's collector.proto imports "model.proto" by bare name, so the
    // Jaeger files are named relative to their own directory; everything
    // else is named relative to `proto/`.
    let files = [
        "opentelemetry/proto/collector/trace/v1/trace_service.proto",
        "model.proto",
        "collector.proto",
        "sampling.proto",
    ];
    let includes = [root.join("jaeger/api_v2"), root.clone()];
    let descriptors = protox::compile(files, includes)?;

    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
