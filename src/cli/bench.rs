//! `signet bench`: load on a running agent, signing straight through the PKCS#11 module, or
//! both alternated; one line per run, and a failure when a run had errors.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, Subcommand};

use signet::Config;

use super::ConfigArg;

#[derive(Args, Clone)]
pub struct AgentLoadArgs {
    /// The agent's unix socket.
    #[arg(long, conflicts_with = "address")]
    socket: Option<PathBuf>,
    /// The agent's plain TCP address (host:port), instead of a socket.
    #[arg(long)]
    address: Option<String>,
    /// sign, fingerprint, sign-batch, verify (of one signature Sign made first), or public-key
    /// (no HSM call: the gRPC floor).
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
pub struct LoadShape {
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
pub enum BenchCommand {
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
        /// C_Verify of one signature made first, instead of C_Sign.
        #[arg(long)]
        verify: bool,
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

fn parse_rpc(name: &str) -> Result<signet::bench::agent::Rpc, String> {
    use signet::bench::agent::Rpc;
    match name {
        "sign" => Ok(Rpc::Sign),
        "fingerprint" => Ok(Rpc::Fingerprint),
        "sign-batch" => Ok(Rpc::SignBatch),
        "public-key" => Ok(Rpc::PublicKey),
        "verify" => Ok(Rpc::Verify),
        _ => Err(format!(
            "unknown rpc '{name}': expected sign, fingerprint, sign-batch, verify or public-key"
        )),
    }
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
    verify: bool,
) -> anyhow::Result<signet::bench::Report> {
    let config = Config::load(config)?;
    let Some(p) = signet::backend::pkcs11_only(&config) else {
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
        verify,
    )?)
}

/// `signet bench`: prints one line per run (and the ratios for `compare`); exits non-zero
/// when a run had errors or a signature that did not verify.
pub fn run(command: BenchCommand) -> anyhow::Result<()> {
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
            verify,
        } => check(&raw_run(&config.config, &shape, threads, verify)?),
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
                let verify = load.rpc == signet::bench::agent::Rpc::Verify;
                let raw = raw_run(&config.config, &shape, threads, verify)?;
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
