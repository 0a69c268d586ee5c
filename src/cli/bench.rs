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
    /// A labelled agent, `LABEL=PATH` (a unix socket) or `LABEL=tcp:HOST:PORT`, instead of
    /// `--socket`/`--address`; repeat it to measure several agents (the audit log off, with
    /// `fsync = "always"`, with `"interval"`) alternated in one run.
    #[arg(long = "agent", value_name = "LABEL=TARGET", conflicts_with_all = ["socket", "address"])]
    agents: Vec<String>,
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
    /// The agents to drive, each with its label: the `--agent`s, or the one `--socket` or
    /// `--address` (labelled `agent`).
    fn targets(&self) -> anyhow::Result<Vec<(String, signet::bench::agent::Target)>> {
        use signet::bench::agent::Target;
        if !self.agents.is_empty() {
            return self
                .agents
                .iter()
                .map(|spec| {
                    let Some((label, target)) = spec.split_once('=') else {
                        bail!("--agent {spec}: expected LABEL=PATH or LABEL=tcp:HOST:PORT");
                    };
                    let target = match target.strip_prefix("tcp:") {
                        Some(address) => Target::Tcp(address.to_owned()),
                        None => Target::Unix(PathBuf::from(target)),
                    };
                    Ok((label.to_owned(), target))
                })
                .collect();
        }
        let target = match (&self.socket, &self.address) {
            (Some(socket), _) => Target::Unix(socket.clone()),
            (None, Some(address)) => Target::Tcp(address.clone()),
            (None, None) => bail!(
                "name the agent with --socket PATH, --address HOST:PORT or --agent LABEL=TARGET"
            ),
        };
        Ok(vec![("agent".to_owned(), target)])
    }

    /// One load per agent, each with its label.
    fn loads(
        &self,
        shape: &LoadShape,
        progress: bool,
    ) -> anyhow::Result<Vec<(String, signet::bench::agent::Load)>> {
        use signet::bench::agent::Load;
        Ok(self
            .targets()?
            .into_iter()
            .map(|(label, target)| {
                let load = Load {
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
                };
                (label, load)
            })
            .collect())
    }
}

/// Whether a run's line names its agent (only when several were given by label).
fn load_is_labelled(label: &str) -> bool {
    label != "agent"
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
            for (label, load) in load.loads(&shape, std::io::stderr().is_terminal())? {
                let mut report = runtime.block_on(signet::bench::agent::run(&load))?;
                if load_is_labelled(&label) {
                    report.label = format!("{label}: {}", report.label);
                }
                check(&report)?;
            }
            Ok(())
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
            let loads = load.loads(&shape, false)?;
            let verify = load.rpc == signet::bench::agent::Rpc::Verify;
            // Per agent: its ratios to the raw module, and to the first agent.
            let mut to_raw: Vec<Vec<f64>> = vec![Vec::new(); loads.len()];
            let mut to_first: Vec<Vec<f64>> = vec![Vec::new(); loads.len()];
            // Per agent, and for the raw module: the p50 latency of each round.
            let mut p50s: Vec<Vec<f64>> = vec![Vec::new(); loads.len()];
            let mut raw_p50s = Vec::new();
            for round in 1..=rounds.max(1) {
                // Rotate the order each round, so no agent always runs right after the raw
                // module (or first, on a cold cache).
                let mut reports = vec![None; loads.len()];
                for k in 0..loads.len() {
                    let i = (k + round - 1) % loads.len();
                    let mut report = runtime.block_on(signet::bench::agent::run(&loads[i].1))?;
                    report.label = format!("{}: {}", loads[i].0, report.label);
                    check(&report)?;
                    reports[i] = Some(report);
                }
                let raw = raw_run(&config.config, &shape, threads, verify)?;
                check(&raw)?;
                let reports: Vec<_> = reports.into_iter().flatten().collect();
                raw_p50s.push(f64::from(raw.latency_us(0.5)));
                let first = reports.first().map_or(1e-9, |r| r.rate().max(1e-9));
                for (i, (report, (label, _))) in reports.iter().zip(&loads).enumerate() {
                    let ratio = report.rate() / raw.rate().max(1e-9);
                    let vs_first = report.rate() / first;
                    let of_first = if loads.len() > 1 {
                        format!(", {vs_first:.2}x of {}", loads[0].0)
                    } else {
                        String::new()
                    };
                    println!(
                        "round {round}: {label} {:.0}/s, raw {:.0}/s, ratio {ratio:.2}x{of_first}; \
                         p50 {} us vs {} us",
                        report.rate(),
                        raw.rate(),
                        report.latency_us(0.5),
                        raw.latency_us(0.5)
                    );
                    to_raw[i].push(ratio);
                    to_first[i].push(vs_first);
                    p50s[i].push(f64::from(report.latency_us(0.5)));
                }
            }
            for (i, (label, _)) in loads.iter().enumerate() {
                let vs_first = if loads.len() > 1 {
                    format!(
                        "; {label}/{}: {:.2}x",
                        loads[0].0,
                        signet::bench::median(to_first[i].clone())
                    )
                } else {
                    String::new()
                };
                println!(
                    "median ratio {label}/raw over {} round(s): {:.2}x{vs_first}; median p50 \
                     {:.0} us vs {:.0} us",
                    to_raw[i].len(),
                    signet::bench::median(to_raw[i].clone()),
                    signet::bench::median(p50s[i].clone()),
                    signet::bench::median(raw_p50s.clone()),
                );
            }
            Ok(())
        }
    }
}
