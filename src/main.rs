//! The `signet` command: `serve` runs the agent; `keys` manages keys on the token directly;
//! `sign`, `public-key`, `fingerprint` and `list` are clients of a running agent; `token init`
//! prepares a development token; `audit verify` checks the audit log; `bench` measures.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use signet::backend::pkcs11::{initialize_token, TokenInit};
use signet::config::{self, Config};
use signet::grpc::client;
use signet::key::Algorithm;
use signet::keys::{self, PublicFormat};
use signet::secret::Secret;
use signet::sqooler;

#[derive(Parser)]
#[command(name = "signet", version, about = "A hardware-backed signing agent")]
struct Cli {
    /// Log format on standard error: human (default) or json (one object per line).
    #[arg(long, global = true, env = "SIGNET_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until SIGTERM or SIGINT.
    Serve(ConfigArg),
    /// Manage keys on the token directly (no running agent needed).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Prepare a development token.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Sign a message with a running agent (the message from --file or standard input).
    Sign {
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
    },
    /// Print the public key of a key a running agent serves.
    PublicKey {
        #[command(flatten)]
        agent: AgentArgs,
        /// The key id.
        #[arg(long)]
        key: String,
        /// pem (default), jwk, base64 or hex (the raw key), or json (every form).
        #[arg(long, default_value = "pem", value_parser = ["pem", "jwk", "base64", "hex", "json"])]
        output: String,
    },
    /// Mint and sign an SWT3 anchor fingerprint with a running agent's HMAC key.
    Fingerprint {
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
    },
    /// List the keys a running agent serves.
    List {
        #[command(flatten)]
        agent: AgentArgs,
        /// table (default) or json.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        output: String,
    },
    /// Measure: load on a running agent, the raw PKCS#11 module, or both alternated.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
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
    println!("{text}");
    Ok(())
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

#[derive(Args, Clone)]
struct AgentLoadArgs {
    /// The agent's unix socket.
    #[arg(long, conflicts_with = "address")]
    socket: Option<PathBuf>,
    /// The agent's plain TCP address (host:port), instead of a socket.
    #[arg(long)]
    address: Option<String>,
    /// sign, fingerprint, sign-batch, or public-key (no HSM call: the gRPC floor).
    #[arg(long, default_value = "sign", value_parser = parse_rpc)]
    rpc: signet::bench::agent::Rpc,
    /// Connections to spread the calls over.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Items per SignBatch call.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Stop after this many operations (default: run for --duration).
    #[arg(long)]
    count: Option<u64>,
}

#[derive(Args, Clone)]
struct LoadShape {
    /// The key id.
    #[arg(long)]
    key: String,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Drive a running agent and report throughput, latency and errors.
    Agent {
        #[command(flatten)]
        load: AgentLoadArgs,
        #[command(flatten)]
        shape: LoadShape,
    },
    /// Sign straight through the PKCS#11 module of the config, in this process.
    Raw {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        shape: LoadShape,
        /// Threads, each with its own session.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Alternate agent and raw runs (A B A B …) and print each pair's ratio and their median.
    Compare {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        load: AgentLoadArgs,
        #[command(flatten)]
        shape: LoadShape,
        /// Threads of the raw runs.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// How many A/B pairs.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain of audit log files (oldest first when several, so the links
    /// across rotations are checked too); reports the first record that was edited, removed,
    /// inserted or reordered, with its line number. Exits non-zero if anything is wrong.
    Verify {
        /// The files, oldest first (for example audit.jsonl.1 audit.jsonl).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct ConfigArg {
    /// The configuration file naming the module, token and PIN source (see
    /// signet.example.toml).
    #[arg(long, short, env = "SIGNET_CONFIG")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a sensitive, non-extractable key inside the token; prints its public JWK.
    Generate {
        #[command(flatten)]
        config: ConfigArg,
        /// ed25519, p256 or hmac-sha256.
        #[arg(long = "type", value_parser = parse_algorithm)]
        key_type: Algorithm,
        /// The key id (the object label). Refused if it already exists.
        #[arg(long)]
        id: String,
        /// Succeed without changing anything when a key of this type and id exists (scripts).
        #[arg(long)]
        exists_ok: bool,
    },
    /// Import an SWT3 signing secret, read from standard input, as an HMAC-SHA256 key.
    ImportHmac {
        #[command(flatten)]
        config: ConfigArg,
        /// The key id (the object label). Refused if it already exists.
        #[arg(long)]
        id: String,
    },
    /// Import a spooler's Ed25519 key from the sqooler private-key string read from standard
    /// input; prints the public JWK in sqooler's form.
    ImportSqooler {
        #[command(flatten)]
        config: ConfigArg,
        /// The key id; defaults to (and must equal) the key's sqooler kid.
        #[arg(long)]
        id: Option<String>,
    },
    /// List the private and secret keys on the token and whether the agent would serve them.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the public key of an asymmetric key.
    Public {
        #[command(flatten)]
        config: ConfigArg,
        /// The key id.
        id: String,
        /// jwk, pem, der, raw (binary) or sqooler (the JWK as sqooler stores it).
        #[arg(long, default_value = "jwk", value_parser = parse_public_format)]
        format: PublicFormat,
    },
    /// Destroy a key and its public-key object. This cannot be undone.
    Destroy {
        #[command(flatten)]
        config: ConfigArg,
        /// The key id.
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Initialise a development token (SoftHSM2) with the configured label and user PIN.
    /// Production HSMs are initialised with their vendor's tools.
    Init {
        #[command(flatten)]
        config: ConfigArg,
        /// A file holding the security officer PIN to set (never on the command line).
        #[arg(long)]
        so_pin_file: PathBuf,
    },
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(name)
        .ok_or_else(|| format!("unknown key type '{name}': expected ed25519, p256 or hmac-sha256"))
}

fn parse_rpc(name: &str) -> Result<signet::bench::agent::Rpc, String> {
    use signet::bench::agent::Rpc;
    match name {
        "sign" => Ok(Rpc::Sign),
        "fingerprint" => Ok(Rpc::Fingerprint),
        "sign-batch" => Ok(Rpc::SignBatch),
        "public-key" => Ok(Rpc::PublicKey),
        _ => Err(format!(
            "unknown rpc '{name}': expected sign, fingerprint, sign-batch or public-key"
        )),
    }
}

fn parse_public_format(name: &str) -> Result<PublicFormat, String> {
    PublicFormat::ALL
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .ok_or_else(|| format!("unknown format '{name}': expected jwk, pem, der, raw or sqooler"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if cli.log_format == "json" {
        logs.json().with_current_span(false).init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signet: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each said once. The agent's own [`signet::error::Error`]
/// already ends with its cause, in the words logs and gRPC messages use, so the chain stops
/// there; a cause the message before spells out is left out too.
fn chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let said = cause.to_string();
        if !text.contains(&said) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&said);
        }
        if cause.is::<signet::error::Error>() {
            break;
        }
    }
    text
}

/// For the commands that hold the PIN, a password or a secret being imported: no core dump
/// (RLIMIT_CORE 0, which systemd-coredump also honours) and not dumpable (no core even through
/// a core_pattern pipe, and no ptrace or /proc/PID/mem or environ access by other processes of
/// the same user).
fn no_core_dumps() -> anyhow::Result<()> {
    rlimit::setrlimit(rlimit::Resource::CORE, 0, 0)
        .context("disabling core dumps (RLIMIT_CORE)")?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("marking the process not dumpable (PR_SET_DUMPABLE)")?;
    Ok(())
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(ConfigArg { config }) => {
            no_core_dumps()?;
            let config = Config::load(&config)?;
            let (backend, workers) = signet::server::open_backend(&config)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.limits.io_threads())
                .enable_all()
                .build()?;
            let served = runtime.block_on(signet::server::serve(config, backend, workers));
            // serve() bounds its own shutdown; do not wait for a blocking task stuck in the HSM.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            served?;
            Ok(())
        }
        Command::Keys { command } => {
            no_core_dumps()?;
            run_keys(command)
        }
        Command::Bench { command } => run_bench(command),
        Command::Sign {
            agent,
            key,
            file,
            der,
            output,
        } => {
            let message = read_message(file.as_deref())?;
            let agent = agent.agent()?;
            run_client(client::sign(&agent, key, message, der, output_of(&output)))
        }
        Command::PublicKey { agent, key, output } => {
            let agent = agent.agent()?;
            run_client(client::public_key(&agent, key, output_of(&output)))
        }
        Command::Fingerprint {
            agent,
            key,
            tenant_id,
            procedure_id,
            factor_a,
            factor_b,
            factor_c,
            timestamp_ms,
            agent_id,
            output,
        } => {
            let agent = agent.agent()?;
            let request = signet::grpc::proto::FingerprintRequest {
                key_id: key,
                tenant_id,
                procedure_id,
                factor_a,
                factor_b,
                factor_c,
                timestamp_ms,
                agent_id,
            };
            run_client(client::fingerprint(&agent, request, output_of(&output)))
        }
        Command::List { agent, output } => {
            let agent = agent.agent()?;
            run_client(client::list(&agent, output == "json"))
        }
        Command::Audit {
            command: AuditCommand::Verify { files },
        } => {
            let mut last_hash: Option<String> = None;
            for file in &files {
                match signet::audit::verify(file)? {
                    Ok(verified) => {
                        if last_hash
                            .as_ref()
                            .is_some_and(|h| *h != verified.first_prev)
                        {
                            bail!(
                                "{}: line 1: does not continue the file before it (a file \
                                 between them is missing, or they are out of order)",
                                file.display()
                            );
                        }
                        println!(
                            "{}: {} records, chain intact{}{}",
                            file.display(),
                            verified.records,
                            if verified.head_checked {
                                ""
                            } else {
                                " (no head file next to it: records cut off its end could not \
                                 be detected; normal for a rotated file, a sign of tampering \
                                 for the live log)"
                            },
                            if verified.last_unconfirmed {
                                "; the last record is not confirmed by the head file (left by \
                                 a crash between writing a record and its head, or appended by \
                                 someone who can write the log)"
                            } else {
                                ""
                            }
                        );
                        if let Some(live) = &verified.live {
                            let pid = live
                                .holder
                                .pid
                                .map_or("an unknown pid".into(), |p| format!("pid {p}"));
                            println!(
                                "{}: the log is live (written by {pid}): records may be \
                                 appended while it is read, and the last may not be confirmed \
                                 by the head file yet{}{}",
                                file.display(),
                                match live.unconfirmed {
                                    0 => String::new(),
                                    n => format!(
                                        "; {n} record(s) after the one the head file named \
                                         were appended meanwhile (chained, not yet confirmed)"
                                    ),
                                },
                                if live.partial {
                                    "; one still being written was left out"
                                } else {
                                    ""
                                }
                            );
                        }
                        last_hash = Some(verified.last_hash);
                    }
                    Err(broken) => bail!(
                        "{}: line {}: {}",
                        file.display(),
                        broken.line,
                        broken.reason
                    ),
                }
            }
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Init {
                    config,
                    so_pin_file,
                },
        } => {
            let config = Config::load(&config.config)?;
            let config::Backend::Pkcs11(p) = &config.backend else {
                bail!(
                    "`signet token init` prepares PKCS#11 development tokens (SoftHSM2); a \
                     YubiHSM2 is set up with Yubico's yubihsm-shell"
                );
            };
            let so_pin = Secret::from_file(&so_pin_file)?;
            let pin = p.pin.read()?;
            match initialize_token(p, &so_pin, &pin)? {
                TokenInit::Created => println!("token initialised"),
                TokenInit::AlreadyExists => println!("token already exists; left as it is"),
            }
            Ok(())
        }
    }
}

fn open(config: &Path) -> anyhow::Result<Box<dyn signet::backend::admin::KeyAdmin>> {
    Ok(keys::open(&Config::load(config)?)?)
}

/// Key commands: results go to standard output (JWKs, tables, keys), everything meant for the
/// operator to read goes to standard error.
fn run_keys(command: KeysCommand) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match command {
        KeysCommand::Generate {
            config,
            key_type,
            id,
            exists_ok,
        } => {
            let admin = open(&config.config)?;
            let public = keys::generate(admin.as_ref(), key_type, &id, exists_ok)?;
            eprintln!(
                "{} key '{}' is on the token",
                key_type.name(),
                id.escape_debug()
            );
            if let Some(public) = public {
                writeln!(stdout, "{}", public.jwk(&id))?;
            }
        }
        KeysCommand::ImportHmac { config, id } => {
            let config = Config::load(&config.config)?;
            let secret = Secret::from_stdin("SWT3 signing secret (not echoed): ")?;
            let admin = keys::open(&config)?;
            keys::import_hmac(admin.as_ref(), &id, &secret)?;
            drop(secret);
            eprintln!(
                "imported hmac-sha256 key '{}' (sensitive, non-extractable); it signed and \
                 matched a test message",
                id.escape_debug()
            );
        }
        KeysCommand::ImportSqooler { config, id } => {
            let config = Config::load(&config.config)?;
            let input = Secret::from_stdin("sqooler private-key string (not echoed): ")?;
            let key = sqooler::PrivateKey::from_config_str(input.expose())?;
            drop(input);
            let admin = keys::open(&config)?;
            keys::import_sqooler(admin.as_ref(), id.as_deref(), &key)?;
            let public_jwk = sqooler::public_jwk(&key.kid, &key.public);
            let kid = key.kid.escape_debug().to_string();
            drop(key);
            eprintln!(
                "imported ed25519 key '{kid}' (sensitive, non-extractable); it signed and \
                 verified with the original public key. Its public JWK, as sqooler stores it:"
            );
            writeln!(stdout, "{public_jwk}")?;
        }
        KeysCommand::List { config, json } => {
            let config = Config::load(&config.config)?;
            let listed = keys::open(&config)?.list()?;
            let missing = keys::missing(&listed, config.backend.keys());
            let text = if json {
                keys::list_json(&listed, &missing)
            } else {
                keys::list_table(&listed, &missing)
            };
            stdout.write_all(text.as_bytes())?;
        }
        KeysCommand::Public { config, id, format } => {
            if format.is_binary() && stdout.is_terminal() {
                bail!(
                    "refusing to write binary output to a terminal; redirect it to a file \
                     (> key.bin) or use --format pem"
                );
            }
            let bytes = keys::public(open(&config.config)?.as_ref(), &id, format)?;
            stdout.write_all(&bytes)?;
        }
        KeysCommand::Destroy { config, id, yes } => {
            let admin = open(&config.config)?;
            keys::the_key(admin.as_ref(), &id)?;
            if !yes {
                confirm_destroy(&id)?;
            }
            let objects = admin.destroy(&id)?;
            eprintln!(
                "destroyed key '{}' ({objects} object{})",
                id.escape_debug(),
                if objects == 1 { "" } else { "s" }
            );
        }
    }
    stdout.flush()?;
    Ok(())
}

/// Asks the operator to type the key id. Without a terminal there is nobody to ask: `--yes`
/// is required.
fn confirm_destroy(id: &str) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("refusing to destroy key '{}' without confirmation: standard input is not a terminal; pass --yes", id.escape_debug());
    }
    eprint!(
        "Destroying key '{}' cannot be undone; signatures it made can no longer be produced.\n\
         Type the key id to confirm: ",
        id.escape_debug()
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin
        .read_line(&mut answer)
        .context("reading the confirmation")?;
    if answer.trim_end_matches(['\r', '\n']) != id {
        bail!("not confirmed; nothing was destroyed");
    }
    Ok(())
}

impl AgentLoadArgs {
    fn load(
        &self,
        shape: &LoadShape,
        progress: bool,
    ) -> anyhow::Result<signet::bench::agent::Load> {
        use signet::bench::agent::{Load, Target};
        let target = match (&self.socket, &self.address) {
            (Some(socket), _) => Target::Unix(socket.clone()),
            (None, Some(address)) => Target::Tcp(address.clone()),
            (None, None) => bail!("name the agent with --socket PATH or --address HOST:PORT"),
        };
        Ok(Load {
            target,
            rpc: self.rpc,
            key: shape.key.clone(),
            size: shape.size,
            connections: self.connections,
            in_flight: self.in_flight,
            batch: self.batch,
            duration: std::time::Duration::from_secs_f64(shape.duration),
            count: self.count,
            progress,
        })
    }
}

fn raw_run(
    config: &Path,
    shape: &LoadShape,
    threads: usize,
) -> anyhow::Result<signet::bench::Report> {
    let config = Config::load(config)?;
    let config::Backend::Pkcs11(p) = &config.backend else {
        bail!("`signet bench raw` measures a PKCS#11 module; the configuration names a YubiHSM");
    };
    let pin = p.pin.read()?;
    Ok(signet::backend::pkcs11::raw::run(
        p,
        &pin,
        &shape.key,
        threads,
        shape.size,
        std::time::Duration::from_secs_f64(shape.duration),
    )?)
}

/// `signet bench`: prints one line per run (and the ratios for `compare`); exits non-zero
/// when a run had errors or a signature that did not verify.
fn run_bench(command: BenchCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let check = |report: &signet::bench::Report| -> anyhow::Result<()> {
        println!("{}", report.render());
        if !report.errors.is_empty() || report.verified.1 > 0 {
            bail!("the run had errors or signatures that did not verify");
        }
        Ok(())
    };
    match command {
        BenchCommand::Agent { load, shape } => {
            let load = load.load(&shape, std::io::stderr().is_terminal())?;
            check(&runtime.block_on(signet::bench::agent::run(&load))?)
        }
        BenchCommand::Raw {
            config,
            shape,
            threads,
        } => check(&raw_run(&config.config, &shape, threads)?),
        BenchCommand::Compare {
            config,
            load,
            shape,
            threads,
            rounds,
        } => {
            let load = load.load(&shape, false)?;
            let mut ratios = Vec::new();
            for round in 1..=rounds.max(1) {
                let agent = runtime.block_on(signet::bench::agent::run(&load))?;
                check(&agent)?;
                let raw = raw_run(&config.config, &shape, threads)?;
                check(&raw)?;
                let ratio = agent.rate() / raw.rate().max(1e-9);
                println!(
                    "round {round}: agent {:.0}/s, raw {:.0}/s, ratio {ratio:.2}x; p50 {} us vs {} us",
                    agent.rate(),
                    raw.rate(),
                    agent.latency_us(0.5),
                    raw.latency_us(0.5)
                );
                ratios.push(ratio);
            }
            println!(
                "median ratio agent/raw over {} round(s): {:.2}x",
                ratios.len(),
                signet::bench::median(ratios)
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_line_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let ours = signet::error::Error::io("reading secret file /p", io);
        assert_eq!(
            chain(&anyhow::Error::new(ours)),
            "reading secret file /p: no such file"
        );
        let ours = signet::error::Error::Config("x.toml: line 2".into());
        let wrapped = anyhow::Error::new(ours).context("starting");
        assert_eq!(chain(&wrapped), "starting: configuration: x.toml: line 2");
    }

    #[test]
    fn no_core_dumps_leaves_the_process_undumpable() {
        no_core_dumps().expect("no core dumps");
        assert_eq!(
            rustix::process::dumpable_behavior().expect("PR_GET_DUMPABLE"),
            rustix::process::DumpableBehavior::NotDumpable
        );
        assert_eq!(
            rlimit::getrlimit(rlimit::Resource::CORE).expect("RLIMIT_CORE"),
            (0, 0)
        );
    }
}
