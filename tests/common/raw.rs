//! gRPC calls sent as raw HTTP/2 with the `h2` crate: headers the test chooses (a
//! `grpc-timeout` no client timer enforces), bytes no client would send, and the answer read
//! as it arrives (status from the headers or the trailers).

use std::path::Path;

use bytes::{Buf, Bytes};
use tokio::net::UnixStream;

/// What the agent answered to one raw call.
#[derive(Debug)]
pub struct RawAnswer {
    /// The `grpc-status` (0 is OK).
    pub status: u32,
    /// The `grpc-message`, percent-decoded.
    pub message: String,
    /// The body: the gRPC-framed response message, if any.
    pub body: Vec<u8>,
}

impl RawAnswer {
    /// The response message decoded as `M` (the first gRPC frame of the body).
    pub fn decode<M: prost::Message + Default>(&self) -> M {
        assert!(self.body.len() >= 5, "a framed message: {self:?}");
        M::decode(&self.body[5..]).expect("a valid response message")
    }
}

/// `message` framed for gRPC: no compression, 4-byte length, the bytes.
pub fn frame(message: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(message);
    framed.into()
}

/// Calls `path` (`/signet.v1.Signer/Sign`) on the agent at `socket` with `body` (already
/// framed) and the extra `headers`, and reads the whole answer.
pub async fn call(socket: &Path, path: &str, headers: &[(&str, &str)], body: Bytes) -> RawAnswer {
    let stream = UnixStream::connect(socket).await.expect("connect");
    let (client, connection) = h2::client::handshake(stream).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.expect("ready");
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (response, mut send) = client
        .send_request(request.body(()).expect("request"), false)
        .expect("send");
    send.send_data(body, true).expect("body");
    let response = response.await.expect("response headers");
    let (parts, mut stream) = response.into_parts();
    let mut body = Vec::new();
    while let Some(chunk) = stream.data().await {
        let mut chunk = chunk.expect("data");
        let _ = stream.flow_control().release_capacity(chunk.remaining());
        body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    let trailers = stream
        .trailers()
        .await
        .expect("trailers")
        .unwrap_or_default();
    let field = |name: &str| {
        trailers
            .get(name)
            .or_else(|| parts.headers.get(name))
            .map(|v| v.to_str().expect("ASCII").to_owned())
    };
    RawAnswer {
        status: field("grpc-status")
            .expect("grpc-status")
            .parse()
            .expect("a number"),
        message: percent_decode(&field("grpc-message").unwrap_or_default()),
        body,
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
