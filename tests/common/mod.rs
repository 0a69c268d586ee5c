//! Test fixtures: a real PKCS#11 token (SoftHSM2, or Kryoptic with [`TestToken::kryoptic`])
//! created in a temporary directory, keys made with the `signet` binary, the real agent started
//! as a child process, and a gRPC client over its unix socket.
//!
//! Every PKCS#11 call happens in a child process with its own `SOFTHSM2_CONF` or
//! `KRYOPTIC_CONF`, so tests never share the process-global `C_Initialize` and run in parallel
//! under any test runner.
#![allow(dead_code)]

pub mod ca;
pub mod config;
pub mod health;
pub mod in_process;
pub mod kryoptic;
pub mod output;
pub mod ports;
pub mod raw_h2;
pub mod requests;
pub mod slow;
pub mod sqooler;
#[cfg(feature = "yubihsm-mock")]
pub mod yubihsm;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use signet::grpc::proto::signer_client::SignerClient;
use tempfile::TempDir;
use tonic::transport::{Channel, Endpoint, Uri};

/// Where Debian, Ubuntu and Fedora put the SoftHSM2 module.
const MODULE_PATHS: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

/// The SoftHSM2 module, or a panic that says how to install it. Tests never skip.
pub fn softhsm_module() -> PathBuf {
    MODULE_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "SoftHSM2 is not installed, and the Signet tests need a real token.\n\
                 Install it with: sudo apt-get install -y softhsm2 opensc\n\
                 (looked for the module in {MODULE_PATHS:?})"
            )
        })
}

/// The `signet` binary built for this test run.
pub fn signet_bin() -> &'static str {
    env!("CARGO_BIN_EXE_signet")
}

/// The user PIN of every test token. Tests also check that it never appears in output.
pub const TEST_PIN: &str = "test-user-pin-7f3a9c";
const TEST_SO_PIN: &str = "test-so-pin-51d2e8";

/// Which PKCS#11 implementation a [`TestToken`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// SoftHSM2, from the system packages.
    SoftHsm2,
    /// Kryoptic, built from the crate registry by `scripts/kryoptic.sh`.
    Kryoptic,
}

/// A PKCS#11 token of its own in a temporary directory, with a Signet config that uses it.
pub struct TestToken {
    pub dir: TempDir,
    pub config: PathBuf,
    /// What the module's environment variable names: `softhsm2.conf` for SoftHSM2, the sqlite
    /// store for Kryoptic (see [`TestToken::conf_env`]).
    pub softhsm_conf: PathBuf,
    pub socket: PathBuf,
    pub label: String,
    pub kind: TokenKind,
    pub module: PathBuf,
}

impl TestToken {
    /// A new, empty SoftHSM2 token.
    pub fn new() -> Self {
        Self::with_config_extra("")
    }

    /// A new SoftHSM2 token whose config gets `extra` appended inside `[backend]`.
    pub fn with_config_extra(extra: &str) -> Self {
        Self::of_kind(TokenKind::SoftHsm2, extra)
    }

    /// A new, empty Kryoptic token.
    pub fn kryoptic() -> Self {
        Self::of_kind(TokenKind::Kryoptic, "")
    }

    /// A new Kryoptic token whose config gets `extra` appended inside `[backend]`.
    pub fn kryoptic_with_config_extra(extra: &str) -> Self {
        Self::of_kind(TokenKind::Kryoptic, extra)
    }

    /// A new token of `kind`, initialised with `signet token init`.
    pub fn of_kind(kind: TokenKind, extra: &str) -> Self {
        let module = match kind {
            TokenKind::SoftHsm2 => softhsm_module(),
            TokenKind::Kryoptic => kryoptic::module(),
        };
        let dir = tempfile::Builder::new()
            .prefix("signet-test-")
            .tempdir()
            .expect("temporary directory");
        let softhsm_conf = match kind {
            TokenKind::SoftHsm2 => {
                let tokens = dir.path().join("tokens");
                std::fs::create_dir(&tokens).expect("token directory");
                let conf = dir.path().join("softhsm2.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "directories.tokendir = {}\nobjectstore.backend = file\n\
                         log.level = ERROR\n",
                        tokens.display()
                    ),
                )
                .expect("softhsm2.conf");
                conf
            }
            TokenKind::Kryoptic => kryoptic::store(dir.path()),
        };
        std::fs::write(dir.path().join("pin"), TEST_PIN).expect("pin file");
        std::fs::write(dir.path().join("so-pin"), TEST_SO_PIN).expect("so-pin file");
        let label = format!("test-{}", std::process::id());
        let socket = dir.path().join("signet.sock");
        let config = dir.path().join("signet.toml");
        let token = TestToken {
            dir,
            config,
            softhsm_conf,
            socket,
            label,
            kind,
            module,
        };
        token.write_config(&token.module, extra);
        let out = token.signet(&[
            "token",
            "init",
            "--config",
            path_str(&token.config),
            "--so-pin-file",
            path_str(&token.dir.path().join("so-pin")),
        ]);
        assert_success(&out, "signet token init");
        token
    }

    /// Rewrites the config with `extra` lines inside `[backend]`.
    pub fn write_config(&self, module: &Path, extra: &str) {
        std::fs::write(
            &self.config,
            format!(
                "{}[backend]\ntype = \"pkcs11\"\nmodule = \"{}\"\n\
                 token = {{ label = \"{}\" }}\npin = {{ file = \"pin\" }}\n{extra}\n",
                config::unix_listener_and_test_client(),
                module.display(),
                self.label
            ),
        )
        .expect("signet.toml");
    }

    /// Rewrites the config as `edit` makes it from the current text.
    pub fn edit_config(&self, edit: impl FnOnce(&str) -> String) {
        let text = std::fs::read_to_string(&self.config).expect("config");
        std::fs::write(&self.config, edit(&text)).expect("config");
    }

    /// The environment variable that points the module at this token, and its value.
    pub fn conf_env(&self) -> (&'static str, &Path) {
        match self.kind {
            TokenKind::SoftHsm2 => ("SOFTHSM2_CONF", &self.softhsm_conf),
            TokenKind::Kryoptic => ("KRYOPTIC_CONF", &self.softhsm_conf),
        }
    }

    /// A logged-in read-write session on this token, opened from the test process itself
    /// (to make objects the agent cannot make), and the module to finalise after it.
    #[allow(dead_code)] // not every test binary opens the token itself
    pub fn open_session(&self) -> (cryptoki::context::Pkcs11, cryptoki::session::Session) {
        use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
        let (var, conf) = self.conf_env();
        std::env::set_var(var, conf);
        let pkcs11 = Pkcs11::new(&self.module).expect("module");
        pkcs11
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .expect("initialise");
        let slot = pkcs11
            .get_slots_with_token()
            .expect("slots")
            .into_iter()
            .find(|s| {
                pkcs11
                    .get_token_info(*s)
                    .is_ok_and(|t| t.label() == self.label)
            })
            .expect("the test token");
        let session = pkcs11.open_rw_session(slot).expect("session");
        session
            .login(
                cryptoki::session::UserType::User,
                Some(&cryptoki::types::AuthPin::new(TEST_PIN.into())),
            )
            .expect("login");
        (pkcs11, session)
    }

    /// A command for the `signet` binary with this token's module configuration.
    pub fn command(&self) -> Command {
        let (var, conf) = self.conf_env();
        let mut cmd = Command::new(signet_bin());
        cmd.env(var, conf)
            .env("SIGNET_LOG", "info")
            .current_dir(self.dir.path());
        cmd
    }

    /// Runs `signet ARGS` to completion.
    pub fn signet(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("running signet")
    }

    /// Generates a key with `signet keys generate` and returns what it printed (the public
    /// JWK for asymmetric keys).
    pub fn generate(&self, key_type: &str, id: &str) -> String {
        let out = self.keys("generate", &["--type", key_type, "--id", id]);
        assert_success(&out, &format!("signet keys generate {key_type} {id}"));
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// Runs `signet ARGS` with `input` on its standard input.
    pub fn signet_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut command = self.command();
        command.args(args);
        run_with_stdin(command, input)
    }

    /// Runs `signet keys COMMAND --config CONFIG ARGS`.
    pub fn keys(&self, command: &str, args: &[&str]) -> Output {
        let config = path_str(&self.config);
        let mut all = vec!["keys", command, "--config", config];
        all.extend_from_slice(args);
        self.signet(&all)
    }

    /// Runs `signet keys COMMAND --config CONFIG ARGS` with `input` on standard input.
    pub fn keys_with_stdin(&self, command: &str, args: &[&str], input: &[u8]) -> Output {
        let config = path_str(&self.config);
        let mut all = vec!["keys", command, "--config", config];
        all.extend_from_slice(args);
        let mut command = self.command();
        command.args(&all);
        run_with_stdin(command, input)
    }

    /// Imports an HMAC secret with `signet keys import-hmac`, the secret on standard input.
    pub fn import_hmac(&self, id: &str, secret: &str) {
        let out = self.keys_with_stdin("import-hmac", &["--id", id], secret.as_bytes());
        assert_success(&out, "signet keys import-hmac");
    }

    /// Creates a P-256 key pair that is extractable and not sensitive, with OpenSC's
    /// pkcs11-tool (Signet itself cannot make such a key).
    pub fn generate_extractable_p256(&self, id: &str) {
        let out = self
            .pkcs11_tool()
            .args(["--keypairgen", "--key-type", "EC:prime256v1"])
            .args(["--label", id, "--extractable"])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "pkcs11-tool could not be run ({e}); install it with: \
                     sudo apt-get install -y opensc"
                )
            });
        assert_success(&out, "pkcs11-tool --keypairgen --extractable");
    }

    /// OpenSC's pkcs11-tool, logged in to this token: a PKCS#11 client independent of Signet.
    pub fn pkcs11_tool(&self) -> Command {
        let (var, conf) = self.conf_env();
        let mut command = Command::new("pkcs11-tool");
        command
            .env(var, conf)
            .args(["--module", path_str(&self.module)])
            .args(["--token-label", &self.label, "--login", "--pin", TEST_PIN]);
        command
    }

    /// Generates one key of each type: `ed`, `ec` and `hmac`.
    pub fn with_demo_keys(self) -> Self {
        for (key_type, id) in [("ed25519", "ed"), ("p256", "ec"), ("hmac-sha256", "hmac")] {
            self.generate(key_type, id);
        }
        self
    }

    /// Starts the agent on this token and waits until it serves.
    pub async fn start_agent(&self) -> Agent {
        Agent::start(self, &[]).await
    }

    /// Starts the agent with extra environment variables (for example the log format).
    pub async fn start_agent_with_env(&self, env: &[(&str, &str)]) -> Agent {
        Agent::start(self, env).await
    }
}

/// An HSM the conformance suite runs against: a directory with a Signet configuration for it,
/// and the `signet` binary set up to reach it.
pub trait Device {
    /// Which backend this is, for messages.
    fn backend(&self) -> &'static str;
    /// The directory of the configuration (and of the agent's socket and logs).
    fn dir(&self) -> &Path;
    /// The Signet configuration.
    fn config(&self) -> &Path;
    /// A command for the `signet` binary that reaches this HSM.
    fn command(&self) -> Command;
    /// Puts a P-256 key labelled `id` on the HSM that breaks the Tier 4 rule (extractable or
    /// exportable under wrap), the way the vendor's tools can and Signet cannot.
    fn put_exportable_p256(&self, id: &str);

    /// The agent's unix socket.
    fn socket(&self) -> PathBuf {
        self.dir().join("signet.sock")
    }

    /// Runs `signet ARGS` to completion.
    fn signet(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("running signet")
    }

    /// Runs `signet keys COMMAND --config CONFIG ARGS`.
    fn keys(&self, command: &str, args: &[&str]) -> Output {
        let config = path_str(self.config()).to_owned();
        let mut all = vec!["keys", command, "--config", &config];
        all.extend_from_slice(args);
        self.signet(&all)
    }

    /// Runs `signet keys COMMAND --config CONFIG ARGS` with `input` on standard input.
    fn keys_with_stdin(&self, command: &str, args: &[&str], input: &[u8]) -> Output {
        let config = path_str(self.config()).to_owned();
        let mut all = vec!["keys", command, "--config", &config];
        all.extend_from_slice(args);
        let mut command = self.command();
        command.args(&all);
        run_with_stdin(command, input)
    }

    /// Generates a key with `signet keys generate` and returns what it printed.
    fn generate_key(&self, key_type: &str, id: &str) -> String {
        let out = self.keys("generate", &["--type", key_type, "--id", id]);
        assert_success(
            &out,
            &format!("{}: signet keys generate {key_type} {id}", self.backend()),
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// Imports an HMAC secret with `signet keys import-hmac`.
    fn import_hmac_key(&self, id: &str, secret: &str) {
        let out = self.keys_with_stdin("import-hmac", &["--id", id], secret.as_bytes());
        assert_success(
            &out,
            &format!("{}: signet keys import-hmac", self.backend()),
        );
    }

    /// The longest message the HSM signs whole (Ed25519, HMAC); longer ones get
    /// RESOURCE_EXHAUSTED. `None` when only the agent's own limit applies.
    fn max_whole_message(&self) -> Option<usize> {
        None
    }

    /// The PIN or password the configuration reads, which must never appear in output.
    fn secret(&self) -> &'static str;

    /// One generated key of each type: `ed`, `ec` and `hmac`.
    fn add_demo_keys(&self) {
        for (key_type, id) in [("ed25519", "ed"), ("p256", "ec"), ("hmac-sha256", "hmac")] {
            self.generate_key(key_type, id);
        }
    }

    /// `ed`, `ec` and `hmac` (from [`HMAC_SECRET`]), as [`Verifier`] knows them.
    fn add_verifiable_keys(&self) {
        self.generate_key("ed25519", "ed");
        self.generate_key("p256", "ec");
        self.import_hmac_key("hmac", HMAC_SECRET);
    }

    /// Starts `signet serve` on this HSM and waits until it serves.
    #[allow(async_fn_in_trait)]
    async fn start(&self) -> Agent {
        Agent::spawn(self.command(), self.config(), self.socket(), self.dir()).await
    }

    /// Runs `signet serve` expecting it to refuse to start; returns its standard error.
    fn refused_start(&self) -> String {
        let out = self
            .command()
            .args(["serve", "--config", path_str(self.config())])
            .output()
            .expect("run signet serve");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "{}: signet serve should have refused to start:\n{stderr}",
            self.backend()
        );
        assert!(!self.socket().exists(), "no socket is left behind");
        stderr
    }
}

impl Device for TestToken {
    fn backend(&self) -> &'static str {
        match self.kind {
            TokenKind::SoftHsm2 => "softhsm",
            TokenKind::Kryoptic => "kryoptic",
        }
    }
    fn secret(&self) -> &'static str {
        TEST_PIN
    }
    fn dir(&self) -> &Path {
        self.dir.path()
    }
    fn config(&self) -> &Path {
        &self.config
    }
    fn command(&self) -> Command {
        TestToken::command(self)
    }
    fn put_exportable_p256(&self, id: &str) {
        self.generate_extractable_p256(id);
    }
}

/// Runs `command` to completion with `input` on its standard input.
pub fn run_with_stdin(mut command: Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn signet");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write standard input");
    child.wait_with_output().expect("signet")
}

/// The user id this test runs as (the owner of a directory it just made).
pub fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::metadata(dir.path()).expect("metadata").uid()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `signet serve` child process.
pub struct Agent {
    child: Option<Child>,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Agent {
    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    async fn start(token: &TestToken, env: &[(&str, &str)]) -> Agent {
        let mut command = token.command();
        command.envs(env.iter().copied());
        Self::spawn(
            command,
            &token.config,
            token.socket.clone(),
            token.dir.path(),
        )
        .await
    }

    /// Runs `command serve --config CONFIG`, logging to a file in `dir`, and waits until the
    /// agent serves on `socket`.
    pub async fn spawn(mut command: Command, config: &Path, socket: PathBuf, dir: &Path) -> Agent {
        let log = dir.join(format!(
            "agent-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos()
        ));
        let child = command
            .args(["serve", "--config", path_str(config)])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn signet serve");
        let mut agent = Agent {
            child: Some(child),
            socket,
            log,
        };
        agent.wait_until_serving().await;
        agent
    }

    async fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "the agent exited ({status}) before serving:\n{}",
                    self.log_text()
                );
            }
            if self.socket.exists() {
                if let Ok(channel) = connect(&self.socket).await {
                    if health::status(channel)
                        .await
                        .is_ok_and(|s| s == health::SERVING)
                    {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not start serving within 30 s:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A client of the Signer service.
    pub async fn client(&self) -> SignerClient<Channel> {
        SignerClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }

    /// A channel to the agent's unix socket.
    pub async fn channel(&self) -> Channel {
        connect(&self.socket).await.expect("connect to the agent")
    }

    /// What the agent has written to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit; returns the exit status and the whole log.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let status = terminate(&mut child);
        (status, self.log_text())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().expect("wait for the agent")
}

/// Connects to a unix socket with tonic.
pub async fn connect(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket = socket.to_path_buf();
    Endpoint::from_static("http://signet.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
}

/// Parses a P-256 JWK with the p256 crate, which accepts only the key members (it rejects
/// `kid`, `alg` and `key_ops` as unknown fields), so those are left out of what it is given.
pub fn p256_from_jwk(jwk: &str) -> p256::ecdsa::VerifyingKey {
    let full: serde_json::Value = serde_json::from_str(jwk).expect("jwk json");
    let key_only = serde_json::json!({
        "kty": full["kty"], "crv": full["crv"], "x": full["x"], "y": full["y"],
    });
    p256::PublicKey::from_jwk_str(&key_only.to_string())
        .expect("the JWK is a P-256 key")
        .into()
}

/// Parses an Ed25519 JWK's `x` with ed25519-dalek.
pub fn ed25519_from_jwk(jwk: &str) -> ed25519_dalek::VerifyingKey {
    let full: serde_json::Value = serde_json::from_str(jwk).expect("jwk json");
    assert_eq!(
        (&full["kty"], &full["crv"]),
        (&"OKP".into(), &"Ed25519".into())
    );
    let x: [u8; 32] = b64(&full["x"]).try_into().expect("32-byte x");
    ed25519_dalek::VerifyingKey::from_bytes(&x).expect("an Ed25519 point")
}

/// Decodes a JWK's base64url member.
pub fn b64(value: &serde_json::Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value.as_str().expect("string member"))
        .expect("base64url")
}

/// The Python interpreter of the virtual environment that holds the callers' own libraries
/// (`tests/python/requirements.txt`: sqooler), made by `scripts/python-env.sh`. `./test.sh`
/// creates it and passes it in `SIGNET_TEST_PYTHON`. Tests never skip without it.
pub fn callers_python() -> PathBuf {
    let path = std::env::var_os("SIGNET_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/python-venv/bin/python")
        });
    assert!(
        path.exists(),
        "the Python environment with sqooler is missing ({}).\n\
         Create it with: scripts/python-env.sh (or run the whole suite with ./test.sh)",
        path.display()
    );
    path
}

/// Runs `code` with the callers' Python, `args` in `sys.argv[1:]`, and returns its standard
/// output; panics with its standard error if it fails.
pub fn python(code: &str, args: &[&str]) -> String {
    let out = Command::new(callers_python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("running python");
    assert_success(&out, "python");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The HMAC secret of [`TestToken::with_verifiable_keys`]'s `hmac` key (64 hex characters).
pub const HMAC_SECRET: &str = "4b1d7e0c2f9a8b3c6d5e4f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4";

impl TestToken {
    /// One key of each type whose signatures a test can check independently: `ed` and `ec`
    /// (public keys from GetPublicKey) and `hmac` (imported from [`HMAC_SECRET`]).
    pub fn with_verifiable_keys(self) -> Self {
        self.generate("ed25519", "ed");
        self.generate("p256", "ec");
        self.import_hmac("hmac", HMAC_SECRET);
        self
    }
}

/// Whether `signature` is the HMAC-SHA256 of `message` under [`HMAC_SECRET`] (the `hmac` crate).
pub fn verify_hmac(message: &[u8], signature: &[u8]) -> bool {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).expect("HMAC key");
    mac.update(message);
    mac.verify_slice(signature).is_ok()
}

/// Checks signatures of the `ed`, `ec` and `hmac` keys with ed25519-dalek, p256 and hmac.
pub struct Verifier {
    ed: ed25519_dalek::VerifyingKey,
    ec: p256::ecdsa::VerifyingKey,
}

/// The key ids [`Verifier`] knows.
pub const VERIFIABLE_KEYS: [&str; 3] = ["ed", "ec", "hmac"];

impl Verifier {
    /// Reads the public keys from the agent (raw encodings, parsed by the independent crates).
    pub async fn fetch(channel: Channel) -> Self {
        use signet::grpc::proto::GetPublicKeyRequest;
        let client = SignerClient::new(channel);
        let raw = |id: &str| {
            let request = GetPublicKeyRequest {
                key_id: id.into(),
                key_version: None,
            };
            let mut client = client.clone();
            async move {
                let reply = client.get_public_key(request).await;
                reply.expect("GetPublicKey").into_inner().raw
            }
        };
        let ed: [u8; 32] = raw("ed").await.try_into().expect("32 bytes");
        let ec = raw("ec").await;
        Verifier {
            ed: ed25519_dalek::VerifyingKey::from_bytes(&ed).expect("Ed25519 key"),
            ec: p256::ecdsa::VerifyingKey::from_sec1_bytes(&ec).expect("P-256 key"),
        }
    }

    /// Whether `signature` is `key_id`'s valid signature of `message`.
    pub fn verify(&self, key_id: &str, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        match key_id {
            "ed" => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| self.ed.verify_strict(message, &s).is_ok()),
            "ec" => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| self.ec.verify(message, &s).is_ok()),
            "hmac" => verify_hmac(message, signature),
            other => panic!("no verifier for key {other}"),
        }
    }
}

/// Whether a failed call provably never reached the agent's handler: HTTP/2 says a stream
/// refused by a graceful GOAWAY (`NO_ERROR`, above the last stream id) was not processed;
/// hyper cancels a request it could not send before the connection closed; and a write that
/// finds the connection closed or reset (broken pipe, connection reset) did not deliver a
/// request, because the agent closes a connection only after answering every stream it
/// accepted on it (a reset comes from the kernel for a connection the agent never accepted).
pub fn never_processed(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(e) = error.downcast_ref::<hyper::Error>() {
            if e.is_canceled() {
                return true;
            }
        }
        if let Some(e) = error.downcast_ref::<std::io::Error>() {
            // A reset connection was never accepted by the agent, or dropped before it sent its
            // HTTP/2 preface: at shutdown, connections still in the listener's backlog are
            // reset by the kernel when the listener closes. A connection the agent accepted is
            // only ever shut down gracefully, after it answered every stream it took.
            if matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ) {
                return true;
            }
        }
        if let Some(e) = error.downcast_ref::<h2::Error>() {
            if e.is_go_away() && e.is_remote() && e.reason() == Some(h2::Reason::NO_ERROR) {
                return true;
            }
        }
        source = error.source();
    }
    false
}

/// What one call of a load run got.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The call failed before the agent could have accepted it (see [`never_processed`]).
    pub never_processed: bool,
    /// When the answer arrived.
    pub at: Instant,
    /// `Ok` for a signature (already verified), otherwise the status code.
    pub code: tonic::Code,
    /// The status message, for errors.
    pub message: String,
}

/// Signs with `clients` concurrent clients (each on its own connection), cycling through the
/// verifiable keys, until `stop` turns true or `count` calls were made in all. Every signature
/// is verified as it arrives; one that does not verify fails the test at once.
pub async fn sign_load(
    socket: PathBuf,
    clients: usize,
    count: Option<usize>,
    stop: tokio::sync::watch::Receiver<bool>,
    verifier: std::sync::Arc<Verifier>,
) -> Vec<Outcome> {
    use signet::grpc::proto::SignRequest;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let issued = std::sync::Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for client_no in 0..clients {
        let (socket, stop, verifier, issued) = (
            socket.clone(),
            stop.clone(),
            verifier.clone(),
            issued.clone(),
        );
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            let mut client = None;
            for i in 0.. {
                if *stop.borrow() {
                    break;
                }
                if count.is_some_and(|n| issued.fetch_add(1, Ordering::Relaxed) >= n) {
                    break;
                }
                if client.is_none() {
                    match connect(&socket).await {
                        Ok(channel) => client = Some(SignerClient::new(channel)),
                        Err(e) => {
                            outcomes.push(Outcome {
                                never_processed: true,
                                at: Instant::now(),
                                code: tonic::Code::Unavailable,
                                message: format!("connect: {e}"),
                            });
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let key = VERIFIABLE_KEYS[(client_no + i) % 3];
                let message = format!("load {client_no} {i}").into_bytes();
                let request = SignRequest {
                    key_id: key.into(),
                    message: message.clone(),
                    ..Default::default()
                };
                let Some(c) = client.as_mut() else { continue };
                let reply = c.sign(request).await;
                let outcome = match reply {
                    Ok(reply) => {
                        let signature = reply.into_inner().signature;
                        assert!(
                            verifier.verify(key, &message, &signature),
                            "a signature from key {key} does not verify"
                        );
                        Outcome {
                            never_processed: false,
                            at: Instant::now(),
                            code: tonic::Code::Ok,
                            message: String::new(),
                        }
                    }
                    Err(status) => Outcome {
                        never_processed: never_processed(&status),
                        at: Instant::now(),
                        code: status.code(),
                        message: format!("{status:?}"),
                    },
                };
                outcomes.push(outcome);
            }
            outcomes
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("a load task panicked"));
    }
    all.sort_by_key(|o| o.at);
    all
}
