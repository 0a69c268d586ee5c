//! A quick throughput check against a running agent (the full load generator is future work):
//! `cargo run --release --example throughput -- SOCKET [SECONDS] [IN_FLIGHT]`
//! signs 64-byte messages with demo-ed25519, demo-p256 and demo-hmac and prints signatures/s.

use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use signet::grpc::proto::signer_client::SignerClient;
use signet::grpc::proto::SignRequest;
use tonic::transport::{Endpoint, Uri};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let socket = args
        .next()
        .ok_or("usage: throughput SOCKET [SECONDS] [IN_FLIGHT]")?;
    let seconds: u64 = args.next().map_or(Ok(3), |s| s.parse())?;
    let in_flight: usize = args.next().map_or(Ok(8), |s| s.parse())?;
    let channel = Endpoint::from_static("http://signet.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await?;
    for key in ["demo-ed25519", "demo-p256", "demo-hmac"] {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let tasks: Vec<_> = (0..in_flight)
            .map(|_| {
                let mut client = SignerClient::new(channel.clone());
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0u64, 0u64);
                    while Instant::now() < deadline {
                        let request = SignRequest {
                            key_id: key.into(),
                            message: vec![0x42; 64],
                            ..Default::default()
                        };
                        match client.sign(request).await {
                            Ok(_) => ok += 1,
                            Err(_) => failed += 1,
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        let (mut ok, mut failed) = (0, 0);
        for task in tasks {
            let (o, f) = task.await?;
            ok += o;
            failed += f;
        }
        let rate = ok as f64 / started.elapsed().as_secs_f64();
        println!(
            "{key:14} {rate:>9.0} signatures/s  ({ok} ok, {failed} failed, {in_flight} in flight)"
        );
    }
    Ok(())
}
