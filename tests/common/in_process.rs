//! The agent served in the test's own process (`serve_until`) over any backend, for tests
//! that inject faults at the backend seam or drive many requests quickly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use signet::backend::Backend;
use signet::grpc::proto::signer_client::SignerClient;
use signet::Error;
use tonic::transport::Channel;

/// The agent serving a backend in this process.
pub struct InProcessAgent {
    /// The directory of the generated configuration, when there is one.
    _dir: Option<tempfile::TempDir>,
    socket: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), Error>>>,
}

impl InProcessAgent {
    /// Serves `device` with `sessions` workers and `limits` (TOML lines of `[limits]`), on a
    /// unix socket in a new temporary directory, granting this test's uid every key.
    pub async fn start(device: Arc<dyn Backend>, sessions: usize, limits: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("signet.toml");
        std::fs::write(
            &config_path,
            format!(
                "{}[limits]\n{limits}\n\n\
                 [backend]\ntype = \"pkcs11\"\nmodule = \"unused.so\"\n\
                 token = {{ label = \"unused\" }}\npin = {{ env = \"UNUSED\" }}\n",
                super::config::unix_listener_and_test_client()
            ),
        )
        .expect("config");
        let config = signet::config::Config::load(&config_path).expect("config");
        let mut agent = Self::serve(config, device, sessions).await;
        agent._dir = Some(dir);
        agent
    }

    /// Serves `backend` with `config` (its first listener must be a unix socket) and waits
    /// until the socket accepts connections.
    pub async fn serve(
        config: signet::config::Config,
        backend: Arc<dyn Backend>,
        sessions: usize,
    ) -> Self {
        let Some(signet::config::Listener::Unix { path, .. }) = config.listen.first() else {
            panic!("the first listener must be a unix socket");
        };
        let socket = path.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(signet::server::serve_until(
            config,
            backend,
            sessions,
            async move {
                let _ = stopped.await;
                Ok(())
            },
        ));
        let agent = InProcessAgent {
            _dir: None,
            socket,
            stop: Some(stop),
            server: Some(server),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while super::connect(&agent.socket).await.is_err() {
            assert!(Instant::now() < deadline, "the agent did not start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        agent
    }

    pub fn socket(&self) -> std::path::PathBuf {
        self.socket.clone()
    }

    pub async fn client(&self) -> SignerClient<Channel> {
        SignerClient::new(super::connect(&self.socket()).await.expect("connect"))
    }

    pub async fn health(&self) -> i32 {
        let channel = super::connect(&self.socket()).await.expect("connect");
        super::health::status(channel).await.expect("health")
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
