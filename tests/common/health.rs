//! The agent's standard gRPC health service, as the tests ask it about `signet.v1.Signer`.

use std::path::Path;
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// `SERVING` in the health protocol.
pub const SERVING: i32 = 1;
/// `NOT_SERVING` in the health protocol.
pub const NOT_SERVING: i32 = 2;

/// The Signer service's health status.
pub async fn status(channel: Channel) -> Result<i32, tonic::Status> {
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "signet.v1.Signer".into(),
        })
        .await?;
    Ok(reply.into_inner().status)
}

/// Polls the agent on `socket` until its health is `SERVING` (or `NOT_SERVING`, when not
/// `serving`), failing the test after `within`; returns when it was seen.
pub async fn wait_for_health(socket: &Path, serving: bool, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    let want = if serving { SERVING } else { NOT_SERVING };
    loop {
        if let Ok(channel) = super::connect(socket).await {
            if status(channel).await.is_ok_and(|s| s == want) {
                return Instant::now();
            }
        }
        assert!(
            Instant::now() < deadline,
            "health did not become {} within {within:?}",
            if serving { "SERVING" } else { "NOT_SERVING" }
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
