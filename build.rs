//! Compiles `proto/signet/v1/signer.proto` with protox (no `protoc` needed) into tonic stubs
//! and a file descriptor set for gRPC server reflection. The stubs use `grpc::codec::Codec`.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/signet/v1/signer.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("signet_descriptor.bin"), fds.encode_to_vec())?;
    // Type names (`prost::Name`) let the codec name the message that did not decode.
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // prost's codec, but an undecodable request is INVALID_ARGUMENT (src/grpc/codec.rs).
        .codec_path("crate::grpc::codec::Codec")
        .compile_fds_with_config(fds, config)?;
    Ok(())
}
