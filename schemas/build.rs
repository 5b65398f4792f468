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

    // With the `grpc` feature: server and client stubs for the three
    // services, written to `$OUT_DIR/grpc/` so the message code below stays
    // byte for byte what it is without the feature. Every message is an
    // `extern_path` to those generated types, so the stubs speak exactly the
    // types the rest of the workspace uses, from the same descriptor set.
    #[cfg(feature = "grpc")]
    {
        let out = PathBuf::from(std::env::var("OUT_DIR")?).join("grpc");
        std::fs::create_dir_all(&out)?;
        tonic_prost_build::configure()
            .out_dir(out)
            .build_server(true)
            .build_client(true)
            .extern_path(".opentelemetry.proto", "crate::proto::opentelemetry::proto")
            .extern_path(".jaeger.api_v2", "crate::proto::jaeger::api_v2")
            .compile_fds(descriptors.clone())?;
    }
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
