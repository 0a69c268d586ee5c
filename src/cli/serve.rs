//! `signet serve`: loads the configuration, opens the backend, and runs the agent until
//! SIGTERM or SIGINT.

use std::path::Path;

use signet::Config;

/// Runs the agent with the configuration at `config`.
pub fn run(config: &Path) -> anyhow::Result<()> {
    let config = Config::load(config)?;
    let opened = signet::backend::open(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.limits.io_threads())
        .enable_all()
        .build()?;
    let served = runtime.block_on(signet::server::serve(
        config,
        opened.backend,
        opened.workers,
    ));
    // serve() bounds its own shutdown; do not wait for a blocking task stuck in the HSM.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served?;
    Ok(())
}
