//! Compiles the agent's own `proto/signet/v1/signer.proto` with protox (no `protoc` needed) into
//! the tonic client stubs, so every RPC the agent gains appears here without a copy to update.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/signet/v1/signer.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["../../proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
