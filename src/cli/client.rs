//! The clients of a running agent: `signet sign`, `public-key`, `fingerprint` and `list`, and
//! how they reach it (`--socket`, `--address`, TLS).

use std::io::IsTerminal;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

use signet::grpc::client;

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
        let agent = self.agent.agent()?;
        run_client(client::sign(
            &agent,
            self.key,
            message,
            self.der,
            output_of(&self.output),
        ))
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
    /// pem (default), jwk, base64 or hex (the raw key), or json (every form).
    #[arg(long, default_value = "pem", value_parser = ["pem", "jwk", "base64", "hex", "json"])]
    output: String,
}

impl PublicKey {
    /// Prints the public key.
    pub fn run(self) -> anyhow::Result<()> {
        let agent = self.agent.agent()?;
        run_client(client::public_key(
            &agent,
            self.key,
            output_of(&self.output),
        ))
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
        let agent = self.agent.agent()?;
        let request = signet::grpc::proto::FingerprintRequest {
            key_id: self.key,
            tenant_id: self.tenant_id,
            procedure_id: self.procedure_id,
            factor_a: self.factor_a,
            factor_b: self.factor_b,
            factor_c: self.factor_c,
            timestamp_ms: self.timestamp_ms,
            agent_id: self.agent_id,
        };
        run_client(client::fingerprint(
            &agent,
            request,
            output_of(&self.output),
        ))
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
        let agent = self.agent.agent()?;
        run_client(client::list(&agent, self.output == "json"))
    }
}

/// How the client commands reach the agent.
#[derive(Args, Clone)]
struct AgentArgs {
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
    fn agent(&self) -> anyhow::Result<client::Agent> {
        if !(self.timeout > 0.0 && self.timeout <= 3600.0) {
            bail!("--timeout must be between 0 and 3600 seconds");
        }
        Ok(client::Agent {
            target: self.target(),
            timeout: std::time::Duration::from_secs_f64(self.timeout),
        })
    }

    fn target(&self) -> client::Target {
        match (&self.address, &self.tls_ca, &self.tls_cert, &self.tls_key) {
            (Some(address), Some(ca), Some(cert), Some(key)) => client::Target::Tls {
                address: address.clone(),
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
                server_name: self.tls_server_name.clone(),
            },
            (Some(address), ..) => client::Target::Tcp(address.clone()),
            _ => client::Target::Unix(
                self.socket
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/run/signet/signet.sock")),
            ),
        }
    }
}

fn output_of(name: &str) -> client::Output {
    match name {
        "hex" | "text" => client::Output::Hex,
        "json" => client::Output::Json,
        "pem" => client::Output::Pem,
        "jwk" => client::Output::Jwk,
        _ => client::Output::Base64,
    }
}

/// Runs a client command: prints its answer, or the gRPC code and message and fails.
fn run_client(
    work: impl std::future::Future<Output = Result<String, client::ClientError>>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let text = runtime.block_on(work)?;
    // `println!` panics when standard output is closed early (`signet list | head -1`).
    match writeln!(std::io::stdout(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written.context("writing to standard output"),
    }
}

fn read_message(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
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
