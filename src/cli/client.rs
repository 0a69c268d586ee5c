//! The clients of a running agent: `signet sign`, `public-key`, `fingerprint` and `list`, and
//! how they reach it (`--socket`, `--address`, TLS).

use std::future::Future;
use std::io::IsTerminal;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine as _;
use clap::Args;
use signet_client::{Anchor, Client, Tls, Zeroizing};

/// `signet sign`.
#[derive(Args)]
pub struct Sign {
    #[command(flatten)]
    agent: AgentArgs,
    /// The key id.
    #[arg(long)]
    key: String,
    /// The message file; standard input when absent or "-".
    #[arg(long)]
    file: Option<PathBuf>,
    /// ECDSA only: the DER (X.509) encoding instead of the 64-byte r||s.
    #[arg(long)]
    der: bool,
    /// base64 (default), hex or json.
    #[arg(long, default_value = "base64", value_parser = ["base64", "hex", "json"])]
    output: String,
}

impl Sign {
    /// Signs the message and prints the signature.
    pub fn run(self) -> anyhow::Result<()> {
        let message = read_message(self.file.as_deref())?;
        let (der, output) = (self.der, self.output);
        self.agent.run(|client| async move {
            let signature = if der {
                client.sign_der(&self.key, message).await?
            } else {
                client.sign(&self.key, message).await?
            };
            let b64 = base64::engine::general_purpose::STANDARD.encode(&signature.bytes);
            Ok(match output.as_str() {
                "hex" => hex::encode(&signature.bytes),
                "json" => serde_json::json!({
                    "key_id": signature.key_id,
                    "key_version": signature.key_version,
                    "algorithm": signature.algorithm.name(),
                    "signature_format": if der { "der" } else { "raw" },
                    "signature": b64,
                })
                .to_string(),
                _ => b64,
            })
        })
    }
}

/// `signet public-key`.
#[derive(Args)]
pub struct PublicKey {
    #[command(flatten)]
    agent: AgentArgs,
    /// The key id.
    #[arg(long)]
    key: String,
    /// The key version (default: the primary version).
    #[arg(long = "key-version")]
    key_version: Option<u32>,
    /// pem (default), jwk, base64 or hex (the raw key), or json (every form, with the JWK Set
    /// of every version that may verify).
    #[arg(long, default_value = "pem", value_parser = ["pem", "jwk", "base64", "hex", "json"])]
    output: String,
}

impl PublicKey {
    /// Prints the public key.
    pub fn run(self) -> anyhow::Result<()> {
        let output = self.output;
        self.agent.run(|client| async move {
            let key = client.public_key_version(&self.key, self.key_version).await?;
            Ok(match output.as_str() {
                "jwk" => key.jwk,
                "base64" => base64::engine::general_purpose::STANDARD.encode(&key.raw),
                "hex" => hex::encode(&key.raw),
                "json" => serde_json::json!({
                    "key_id": key.key_id,
                    "key_version": key.key_version,
                    "algorithm": key.algorithm.name(),
                    "raw_hex": hex::encode(&key.raw),
                    "pem": key.pem,
                    "jwk": serde_json::from_str::<serde_json::Value>(&key.jwk).unwrap_or_default(),
                    "jwk_thumbprint": key.jwk_thumbprint,
                    "jwks": serde_json::from_str::<serde_json::Value>(&key.jwks).unwrap_or_default(),
                })
                .to_string(),
                _ => key.pem.trim_end().to_owned(),
            })
        })
    }
}

/// `signet fingerprint`.
#[derive(Args)]
pub struct Fingerprint {
    #[command(flatten)]
    agent: AgentArgs,
    /// The HMAC key id.
    #[arg(long)]
    key: String,
    /// The tenant id.
    #[arg(long)]
    tenant_id: String,
    /// The procedure id (e.g. AI-INF.1).
    #[arg(long)]
    procedure_id: String,
    /// Factor a.
    #[arg(long, allow_hyphen_values = true)]
    factor_a: f64,
    /// Factor b.
    #[arg(long, allow_hyphen_values = true)]
    factor_b: f64,
    /// Factor c.
    #[arg(long, allow_hyphen_values = true)]
    factor_c: f64,
    /// Milliseconds since the epoch; 0 or absent: the agent's clock.
    #[arg(long, default_value_t = 0)]
    timestamp_ms: i64,
    /// The agent id bound into the signed payload.
    #[arg(long)]
    agent_id: Option<String>,
    /// json (default) or text ("fingerprint signature").
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    output: String,
}

impl Fingerprint {
    /// Mints and signs the fingerprint and prints it.
    pub fn run(self) -> anyhow::Result<()> {
        let mut anchor = Anchor::new(
            self.tenant_id,
            self.procedure_id,
            [self.factor_a, self.factor_b, self.factor_c],
        )
        .at(self.timestamp_ms);
        anchor.agent_id = self.agent_id;
        let output = self.output;
        self.agent.run(|client| async move {
            let w = client.fingerprint(&self.key, &anchor).await?;
            Ok(if output == "text" {
                format!("{} {}", w.fingerprint, w.signature)
            } else {
                serde_json::json!({
                    "key_id": w.key_id,
                    "key_version": w.key_version,
                    "signing_key_id": w.key_id,
                    "signing_key_version": w.key_version,
                    "fingerprint": w.fingerprint,
                    "signature": w.signature,
                    "timestamp_ms": w.timestamp_ms,
                })
                .to_string()
            })
        })
    }
}

/// `signet list`.
#[derive(Args)]
pub struct List {
    #[command(flatten)]
    agent: AgentArgs,
    /// table (default) or json.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

impl List {
    /// Prints the keys the agent serves.
    pub fn run(self) -> anyhow::Result<()> {
        let json = self.output == "json";
        self.agent.run(|client| async move {
            let keys = client.list_keys().await?;
            if json {
                let keys: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "key_id": k.key_id,
                            "algorithm": k.algorithm.name(),
                            "has_public_key": k.has_public_key,
                            "key_version": k.key_version,
                            "can_sign": k.can_sign,
                        })
                    })
                    .collect();
                return Ok(serde_json::Value::Array(keys).to_string());
            }
            let mut text = format!("{:<32} ALGORITHM", "KEY ID");
            for k in keys {
                text.push_str(&format!("\n{:<32} {}", k.key_id, k.algorithm.name()));
            }
            Ok(text)
        })
    }
}

/// How the client commands reach the agent.
#[derive(Args, Clone)]
pub(super) struct AgentArgs {
    /// The agent's unix socket [default: /run/signet/signet.sock].
    #[arg(long, env = "SIGNET_SOCKET", conflicts_with = "address")]
    socket: Option<PathBuf>,
    /// host:port over TCP instead of the socket: plain unless --tls-ca is given.
    #[arg(long, env = "SIGNET_ADDRESS")]
    address: Option<String>,
    /// Seconds a call may take, connecting included.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// The CA certificate (PEM) of the agent's TLS listener.
    #[arg(long, requires_all = ["address", "tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// This client's certificate (PEM).
    #[arg(long, requires = "tls_ca")]
    tls_cert: Option<PathBuf>,
    /// This client's private key (PEM).
    #[arg(long, requires = "tls_ca")]
    tls_key: Option<PathBuf>,
    /// The name in the agent's certificate, when it differs from the address's host.
    #[arg(long, requires = "tls_ca")]
    tls_server_name: Option<String>,
}

impl AgentArgs {
    /// Connects to the agent and runs `work` with the client on a runtime of its own; prints
    /// its answer, or fails with the gRPC code and message (or why no connection was made).
    fn run<F, W>(self, work: W) -> anyhow::Result<()>
    where
        W: FnOnce(Client) -> F,
        F: Future<Output = Result<String, signet_client::Error>>,
    {
        let text = self.call(work)?;
        print_line(&text)
    }

    /// Connects to the agent and runs `work` with the client on a runtime of its own, and
    /// returns its answer.
    pub(super) fn call<T, F, W>(self, work: W) -> anyhow::Result<T>
    where
        W: FnOnce(Client) -> F,
        F: Future<Output = Result<T, signet_client::Error>>,
    {
        if !(self.timeout > 0.0 && self.timeout <= 3600.0) {
            bail!("--timeout must be between 0 and 3600 seconds");
        }
        let timeout = Duration::from_secs_f64(self.timeout);
        let tls = self.tls()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let answer = runtime.block_on(async move {
            let client = match (self.address, tls) {
                (Some(address), Some(tls)) => Client::connect_tls_with(&address, tls).await?,
                (Some(address), None) => Client::connect_tcp(&address).await?,
                (None, _) => {
                    let socket = self
                        .socket
                        .unwrap_or_else(|| PathBuf::from("/run/signet/signet.sock"));
                    Client::connect_unix(socket).await?
                }
            };
            work(client.with_timeout(timeout)).await
        })?;
        Ok(answer)
    }

    /// The TLS settings, read from their files, when `--tls-ca` (with its certificate and key)
    /// is given.
    fn tls(&self) -> anyhow::Result<Option<Tls>> {
        let (Some(ca), Some(cert), Some(key)) = (&self.tls_ca, &self.tls_cert, &self.tls_key)
        else {
            return Ok(None);
        };
        let read =
            |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let tls = Tls::new(read(ca)?, read(cert)?, Zeroizing::new(read(key)?));
        Ok(Some(match &self.tls_server_name {
            Some(name) => tls.server_name(name.clone()),
            None => tls,
        }))
    }
}

/// Prints a client command's answer. `println!` panics when standard output is closed early
/// (`signet list | head -1`); a closed pipe ends the command quietly instead.
pub(super) fn print_line(text: &str) -> anyhow::Result<()> {
    match writeln!(std::io::stdout(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written.context("writing to standard output"),
    }
}

pub(super) fn read_message(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match file {
        Some(path) if path != Path::new("-") => {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        }
        _ => {
            if std::io::stdin().is_terminal() {
                bail!("no message: pipe it to standard input or name a file with --file");
            }
            let mut message = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut message)
                .context("reading the message from standard input")?;
            Ok(message)
        }
    }
}
