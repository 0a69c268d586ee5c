//! Bounds how long a new connection may take to send the HTTP/2 connection preface: a socket
//! that is opened and then says nothing would otherwise hold one of its listener's
//! `limits.max_connections` slots for as long as it stays open, and enough of them would lock
//! every other client out. After the preface, HTTP/2 keep-alive pings find peers that stopped
//! answering (see `server.rs`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// How long a connection may take to send the 24-byte HTTP/2 preface (as long as a TLS
/// listener gives its handshake).
pub(super) const PREFACE_TIME: Duration = Duration::from_secs(10);

/// The length of the HTTP/2 client connection preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`).
const PREFACE_LEN: usize = 24;

/// A connection's socket that reports when the preface's length has been read from it.
pub(super) struct Watched<IO> {
    io: IO,
    read: usize,
    arrived: Option<oneshot::Sender<()>>,
}

/// Wraps `io`; the future completes with `true` once the preface's length has been read, and
/// with `false` if that did not happen within `within` (or the connection ended first).
pub(super) fn watch<IO>(io: IO, within: Duration) -> (Watched<IO>, impl Future<Output = bool>) {
    let (arrived, signal) = oneshot::channel();
    let watched = Watched {
        io,
        read: 0,
        arrived: Some(arrived),
    };
    let prefaced = async move { matches!(tokio::time::timeout(within, signal).await, Ok(Ok(()))) };
    (watched, prefaced)
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if self.arrived.is_some() {
            self.read += buf.filled().len().saturating_sub(before);
            if self.read >= PREFACE_LEN {
                if let Some(arrived) = self.arrived.take() {
                    let _ = arrived.send(());
                }
            }
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads everything `watched` gives into a buffer of `chunk` bytes at a time.
    async fn read_some<IO: AsyncRead + Unpin>(watched: &mut Watched<IO>, chunk: usize) -> usize {
        let mut storage = vec![0; chunk];
        let mut buf = ReadBuf::new(&mut storage);
        std::future::poll_fn(|cx| Pin::new(&mut *watched).poll_read(cx, &mut buf))
            .await
            .expect("read");
        buf.filled().len()
    }

    #[tokio::test]
    async fn the_preface_read_in_pieces_is_noticed() {
        let (client, server) = tokio::io::duplex(64);
        let (mut watched, prefaced) = watch(server, Duration::from_secs(3600));
        let mut client = client;
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            client
                .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                .await
                .expect("write");
            client
        });
        let mut total = 0;
        while total < PREFACE_LEN {
            total += read_some(&mut watched, 5).await;
        }
        assert!(prefaced.await, "24 bytes read in pieces of 5");
        drop(writer.await);
    }

    #[tokio::test]
    async fn silence_is_not_a_preface() {
        let (_client, server) = tokio::io::duplex(64);
        let (_watched, prefaced) = watch(server, Duration::from_millis(10));
        assert!(!prefaced.await, "nothing was sent");
    }
}
