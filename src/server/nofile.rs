//! Checks at start-up that the open-file limit can hold the connections the listeners may
//! accept. Past it, `accept` fails with EMFILE: new connections then wait in the kernel's
//! queue (the accept loop backs off) instead of being refused cleanly at
//! `limits.max_connections`, and the HSM module or the audit log may find no descriptor
//! either. The limit is not raised here (a vendor module that uses `select()` breaks on
//! descriptors past 1024); the operator is told instead.

/// How many connections `listeners` full listeners hold.
fn connections(listeners: usize, max_connections: usize) -> u64 {
    u64::try_from(listeners.saturating_mul(max_connections)).unwrap_or(u64::MAX)
}

/// Warns when the soft `RLIMIT_NOFILE` is below what `listeners` full listeners hold.
pub(super) fn check(listeners: usize, max_connections: usize) {
    let connections = connections(listeners, max_connections);
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, _)) if soft < connections => tracing::warn!(
            open_file_limit = soft,
            connections,
            "the open-file limit is below the connections {listeners} listener(s) may hold \
             (limits.max_connections = {max_connections} each): past it, new connections \
             wait in the kernel's queue instead of being refused, and the HSM module or the \
             audit log may find no descriptor; raise it (LimitNOFILE=, ulimit -n) well above \
             that, or lower limits.max_connections"
        ),
        Ok(_) => {}
        Err(error) => tracing::debug!(%error, "reading RLIMIT_NOFILE failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listener_full() {
        assert_eq!(connections(1, 1024), 1024);
        assert_eq!(connections(2, 1024), 2048);
        assert_eq!(connections(usize::MAX, 2), u64::MAX);
    }
}
