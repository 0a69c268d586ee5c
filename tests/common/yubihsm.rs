//! A YubiHSM2 for tests: `yubihsm`'s MockHsm, served over HTTP the way `yubihsm-connector`
//! serves a device, behind a TCP proxy that a test can take down and bring back (a connector
//! restart) or point at a new MockHsm (a replaced device). The agent and the key commands reach
//! it as they reach a real connector: the real binary with `connector = { http = … }`.
//!
//! MockHsm frees a session only when the client closes it, and the `yubihsm` client never
//! does; MockHsm holds 16 sessions (ids 0 to 15) and then panics. Every `signet` command and
//! every agent start opens one session, so a test makes fewer than 16 of them per device.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::ports::free_port;
use tempfile::TempDir;
use yubihsm::{Capability, Client, Connector, Credentials, Domain};

/// The password of the MockHsm's authentication key 1 (the factory default, as on a device).
pub const MOCK_PASSWORD: &str = "password";
/// The authentication key the agent uses: put on the MockHsm by [`FakeConnector::start`], with
/// a password distinctive enough to search the output for.
pub const AUTH_KEY: u16 = 2;
/// The password of [`AUTH_KEY`].
pub const TEST_PASSWORD: &str = "test-yubihsm-password-8c1e4d";

/// A MockHsm behind an HTTP server, reached through a proxy on `port`.
pub struct FakeConnector {
    /// The address the agent connects to.
    pub port: u16,
    /// The MockHsm the HTTP server serves, for in-process clients.
    hsm: Mutex<Connector>,
    /// The HTTP server's port, where the proxy forwards to.
    upstream: Arc<AtomicU16>,
    running: Mutex<Option<ProxyRun>>,
    posts: Arc<AtomicUsize>,
}

struct ProxyRun {
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    accept: JoinHandle<()>,
}

/// Serves `hsm` over HTTP like `yubihsm-connector`, on a thread that lives as long as the
/// test process; returns its port.
fn serve_http(hsm: Connector) -> u16 {
    for _ in 0..20 {
        let port = free_port();
        let config = yubihsm::connector::HttpConfig {
            addr: "127.0.0.1".into(),
            port,
            timeout_ms: 5_000,
        };
        if let Ok(server) = yubihsm::connector::http::Server::new(&config, hsm.clone()) {
            std::thread::spawn(move || loop {
                // A request the MockHsm cannot answer (an unknown session) fails alone.
                let _ = server.handle_request();
            });
            return port;
        }
    }
    panic!("could not start the MockHsm HTTP server");
}

impl FakeConnector {
    /// A new MockHsm, served and proxied; the proxy is up.
    pub fn start() -> Self {
        let hsm = Connector::mockhsm();
        let upstream = Arc::new(AtomicU16::new(serve_http(hsm.clone())));
        let connector = FakeConnector {
            port: free_port(),
            hsm: Mutex::new(hsm),
            upstream,
            running: Mutex::new(None),
            posts: Arc::new(AtomicUsize::new(0)),
        };
        connector.up();
        put_auth_key(&connector.client(), TEST_PASSWORD.as_bytes())
            .expect("put the test authentication key");
        connector
    }

    /// The connector address for `backend.connector`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many commands (HTTP POSTs to the connector API) have passed the proxy.
    pub fn commands(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }

    /// Opens an in-process session on the MockHsm with its factory authentication key 1.
    pub fn client_with_default_key(&self) -> Client {
        self.client()
    }

    /// Opens an in-process session on the MockHsm (authentication key 1).
    fn client(&self) -> Client {
        let hsm = self.hsm.lock().expect("hsm").clone();
        Client::open(
            hsm,
            Credentials::from_password(1, MOCK_PASSWORD.as_bytes()),
            false,
        )
        .expect("an in-process MockHsm session")
    }

    /// The connector comes (back) up on the same port.
    pub fn up(&self) {
        let mut running = self.running.lock().expect("proxy");
        if running.is_some() {
            return;
        }
        let listener = (0..100)
            .find_map(|_| {
                TcpListener::bind(("127.0.0.1", self.port))
                    .inspect_err(|_| std::thread::sleep(Duration::from_millis(20)))
                    .ok()
            })
            .expect("rebind the proxy port");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (stop, streams, upstream, posts) = (
                stop.clone(),
                streams.clone(),
                self.upstream.clone(),
                self.posts.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let _ = client.set_nonblocking(false);
                            let port = upstream.load(Ordering::SeqCst);
                            let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                                continue;
                            };
                            let mut all = streams.lock().expect("streams");
                            for s in [&client, &server] {
                                all.push(s.try_clone().expect("clone stream"));
                            }
                            drop(all);
                            pump(
                                client.try_clone().expect("clone"),
                                server.try_clone().expect("clone"),
                                Some(posts.clone()),
                            );
                            pump(server, client, None);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        *running = Some(ProxyRun {
            stop,
            streams,
            accept,
        });
    }

    /// The connector goes away: open connections are cut, new ones refused.
    pub fn down(&self) {
        let Some(run) = self.running.lock().expect("proxy").take() else {
            return;
        };
        run.stop.store(true, Ordering::SeqCst);
        run.accept.join().expect("proxy accept thread");
        for stream in run.streams.lock().expect("streams").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Replaces the device with a new, empty MockHsm (the old one's keys are gone).
    pub fn replace_device(&self) {
        let hsm = Connector::mockhsm();
        self.upstream
            .store(serve_http(hsm.clone()), Ordering::SeqCst);
        *self.hsm.lock().expect("hsm") = hsm;
    }

    /// Puts a P-256 key labelled `id` whose capabilities allow export under wrap, as
    /// yubihsm-shell can.
    pub fn put_exportable_p256(&self, id: &str) {
        let client = self.client();
        let used: Vec<u16> = client
            .list_objects(&[])
            .expect("list")
            .into_iter()
            .map(|e| e.object_id)
            .collect();
        let object_id = (100..).find(|i| !used.contains(i)).expect("free id");
        client
            .generate_asymmetric_key(
                object_id,
                id.into(),
                Domain::DOM1,
                Capability::SIGN_ECDSA | Capability::EXPORTABLE_UNDER_WRAP,
                yubihsm::asymmetric::Algorithm::EcP256,
            )
            .expect("generate an exportable key");
    }
}

/// Puts [`AUTH_KEY`] with `password` and every capability on the device `client` is open on.
pub fn put_auth_key(client: &Client, password: &[u8]) -> Result<(), yubihsm::client::Error> {
    client
        .put_authentication_key(
            AUTH_KEY,
            "signet".into(),
            Domain::all(),
            Capability::all(),
            Capability::all(),
            yubihsm::authentication::Algorithm::YubicoAes,
            yubihsm::authentication::Key::derive_from_password(password),
        )
        .map(drop)
}

/// Copies `from` to `to` until either closes; counts connector API requests when `posts`.
fn pump(mut from: TcpStream, mut to: TcpStream, posts: Option<Arc<AtomicUsize>>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        let mut tail: Vec<u8> = Vec::new();
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Some(posts) = &posts {
                tail.extend_from_slice(&buf[..n]);
                let needle = b"POST /connector/api";
                let found = tail.windows(needle.len()).filter(|w| w == needle).count();
                posts.fetch_add(found, Ordering::SeqCst);
                let keep = tail.len().min(needle.len() - 1);
                tail.drain(..tail.len() - keep);
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// A MockHsm with a Signet configuration for it, in a temporary directory.
pub struct TestYubiHsm {
    pub dir: TempDir,
    pub config: PathBuf,
    pub connector: FakeConnector,
}

impl TestYubiHsm {
    /// A new, empty MockHsm.
    pub fn new() -> Self {
        Self::with_config_extra("")
    }

    /// A new MockHsm whose configuration gets `extra` lines inside `[backend]`.
    pub fn with_config_extra(extra: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("signet-yubihsm-")
            .tempdir()
            .expect("temporary directory");
        std::fs::write(dir.path().join("password"), TEST_PASSWORD).expect("password file");
        let config = dir.path().join("signet.toml");
        let device = TestYubiHsm {
            dir,
            config,
            connector: FakeConnector::start(),
        };
        device.write_config(extra);
        device
    }

    /// Rewrites the configuration with `extra` lines inside `[backend]`.
    pub fn write_config(&self, extra: &str) {
        std::fs::write(
            &self.config,
            format!(
                "{}[backend]\ntype = \"yubihsm\"\nconnector = {{ http = \"{}\" }}\n\
                 auth_key = {AUTH_KEY}\npassword = {{ file = \"password\" }}\n{extra}\n",
                super::config::unix_listener_and_test_client(),
                self.connector.url(),
            ),
        )
        .expect("signet.toml");
    }
}

impl super::Device for TestYubiHsm {
    fn backend(&self) -> &'static str {
        "yubihsm (MockHsm)"
    }
    fn secret(&self) -> &'static str {
        TEST_PASSWORD
    }
    fn max_whole_message(&self) -> Option<usize> {
        Some(signet::backend::yubihsm::MAX_WHOLE_MESSAGE)
    }
    fn dir(&self) -> &Path {
        self.dir.path()
    }
    fn config(&self) -> &Path {
        &self.config
    }
    fn command(&self) -> Command {
        let mut cmd = Command::new(super::signet_bin());
        cmd.env("SIGNET_LOG", "info").current_dir(self.dir.path());
        cmd
    }
    fn put_exportable_p256(&self, id: &str) {
        self.connector.put_exportable_p256(id);
    }
}
