//! The agent served in the test's own process (`serve_until`) over any backend, for tests
//! that inject faults at the backend seam or drive many requests quickly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use signet::backend::Backend;
use signet::error::Error;
use signet::grpc::proto::signer_client::SignerClient;
use tonic::transport::Channel;

/// The agent serving `device` in this process, with `sessions` workers and `limits`.
pub struct InProcessAgent {
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), Error>>>,
}

impl InProcessAgent {
    pub async fn start(device: Arc<dyn Backend>, sessions: usize, limits: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("signet.toml");
        std::fs::write(
            &config_path,
            format!(
                "[[listen]]\ntype = \"unix\"\npath = \"signet.sock\"\n\n[limits]\n{limits}\n\n\
                 [[clients]]\nname = \"tests\"\nuid = {}\nkeys = [\"*\"]\n\
                 operations = [\"sign\", \"fingerprint\"]\n\n\
                 [backend]\ntype = \"pkcs11\"\nmodule = \"unused.so\"\n\
                 token = {{ label = \"unused\" }}\npin = {{ env = \"UNUSED\" }}\n",
                super::own_uid()
            ),
        )
        .expect("config");
        let config = signet::config::Config::load(&config_path).expect("config");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(signet::server::serve_until(
            config,
            device,
            sessions,
            async move {
                let _ = stopped.await;
                Ok(())
            },
        ));
        let agent = InProcessAgent {
            dir,
            stop: Some(stop),
            server: Some(server),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while super::connect(&agent.socket()).await.is_err() {
            assert!(Instant::now() < deadline, "the agent did not start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        agent
    }

    pub fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("signet.sock")
    }

    pub async fn client(&self) -> SignerClient<Channel> {
        SignerClient::new(super::connect(&self.socket()).await.expect("connect"))
    }

    pub async fn health(&self) -> i32 {
        use tonic_health::pb::health_client::HealthClient;
        use tonic_health::pb::HealthCheckRequest;
        let channel = super::connect(&self.socket()).await.expect("connect");
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: "signet.v1.Signer".into(),
            })
            .await
            .expect("health")
            .into_inner()
            .status
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().expect("running").send(());
        let server = self.server.take().expect("running");
        tokio::time::timeout(Duration::from_secs(15), server)
            .await
            .expect("the agent stops within its drain time")
            .expect("server task")
            .expect("server");
    }
}
