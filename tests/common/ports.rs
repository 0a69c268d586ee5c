//! Free loopback ports for listeners a test configures.

/// A free loopback port (bound and released; the listener binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
