//! gRPC calls over raw HTTP/2 (the `h2` crate), for headers tonic's client will not send as
//! given (any `grpc-timeout` value) and to read exactly the status the agent answered.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;

/// One HTTP/2 connection to the agent's unix socket.
pub async fn connect(socket: &Path) -> SendRequest<Bytes> {
    let io = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect to the agent");
    let (send, connection) = h2::client::handshake(io).await.expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

/// What the agent answered to one call.
#[derive(Debug)]
pub struct Answer {
    /// The `grpc-status` (from the headers of a trailers-only answer, or from the trailers).
    pub status: i32,
    /// The `grpc-message`, as sent (percent-encoded).
    pub message: String,
    /// The response message, without its 5-byte gRPC frame prefix (empty if none).
    pub body: Vec<u8>,
}

impl Answer {
    /// The response message, decoded.
    pub fn decode<M: prost::Message + Default>(&self) -> M {
        M::decode(self.body.as_slice()).expect("a valid response message")
    }
}

/// Calls `path` (`/signet.v1.Signer/Sign`) with `message` and the extra `headers`; the body
/// follows the headers after `body_after` (a slow client).
pub async fn call(
    send: &SendRequest<Bytes>,
    path: &str,
    headers: &[(&str, &str)],
    message: &impl prost::Message,
    body_after: Duration,
) -> Answer {
    let mut request = http::Request::post(format!("http://signet.invalid{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(()).expect("request");
    let mut send = send
        .clone()
        .ready()
        .await
        .expect("the connection takes a request");
    let (response, mut body) = send.send_request(request, false).expect("send the request");
    let encoded = message.encode_to_vec();
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(encoded.len()).expect("size").to_be_bytes());
    frame.extend_from_slice(&encoded);
    if !body_after.is_zero() {
        tokio::time::sleep(body_after).await;
    }
    // The agent may answer (and end the stream) before a slow body is sent: then the answer
    // is what counts.
    let _ = body.send_data(Bytes::from(frame), true);
    let (parts, mut recv) = response.await.expect("a response").into_parts();
    let grpc = |headers: &http::HeaderMap| {
        let status = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
        let message = headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Some((status, message))
    };
    if let Some((status, message)) = grpc(&parts.headers) {
        return Answer {
            status,
            message,
            body: Vec::new(),
        };
    }
    let mut data = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.expect("response data");
        let _ = recv.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = recv
        .trailers()
        .await
        .expect("trailers")
        .expect("a response with trailers");
    let (status, message) = grpc(&trailers).expect("grpc-status in the trailers");
    Answer {
        status,
        message,
        body: data.get(5..).map(<[u8]>::to_vec).unwrap_or_default(),
    }
}
