//! Requests that are not valid protobuf, sent as raw gRPC messages to the real agent: each is
//! refused with INVALID_ARGUMENT naming the message type (and the field where known), logged
//! once without its bytes, and the agent keeps serving. Unknown fields are skipped.

mod common;

use bytes::{Buf, BufMut};
use common::{TestToken, Verifier};
use prost::Message;
use signet::grpc::proto::{SignRequest, SignResponse};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// A codec that sends and receives message bytes as they are, so a test can send what no
/// protobuf encoder would produce.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

/// Calls `/signet.v1.Signer/{rpc}` with `body` as the request message's bytes.
async fn call_raw(channel: Channel, rpc: &str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path =
        http::uri::PathAndQuery::try_from(format!("/signet.v1.Signer/{rpc}")).expect("a path");
    grpc.unary(tonic::Request::new(body), path, Raw)
        .await
        .map(tonic::Response::into_inner)
}

/// A marker put inside bad requests: it must never reach the log.
const MARKER: &[u8] = b"PAYLOAD-MARKER-5e1f";

/// `key_id` (field 1) with `MARKER` and then a byte that is not UTF-8, as field `field`.
fn not_utf8(field: u8) -> Vec<u8> {
    let mut value = MARKER.to_vec();
    value.push(0xff);
    let mut bytes = vec![field << 3 | 2, value.len() as u8];
    bytes.extend_from_slice(&value);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_are_invalid_arguments_logged_once() {
    let token = TestToken::new().with_verifiable_keys();
    let agent = token
        .start_agent_with_env(&[("SIGNET_LOG_FORMAT", "json")])
        .await;
    let channel = agent.channel().await;

    let valid = SignRequest {
        key_id: "ed".into(),
        message: MARKER.repeat(4),
        message_crc32c: Some(u32::MAX),
        ..Default::default()
    }
    .encode_to_vec();
    // The CRC32C varint is last: cut off inside it.
    let truncated = valid[..valid.len() - 2].to_vec();
    // A batch whose second item's key id is not UTF-8.
    let mut batch = vec![0x0a, 4, 0x0a, 2, b'e', b'd'];
    let item = not_utf8(1);
    batch.extend_from_slice(&[0x0a, item.len() as u8]);
    batch.extend_from_slice(&item);
    let mut tenant_not_utf8 = vec![0x0a, 4, b'h', b'm', b'a', b'c'];
    tenant_not_utf8.extend_from_slice(&not_utf8(2));
    // Deterministic noise that is no protobuf message (checked by the assertions below).
    let garbage: Vec<u8> = (0u32..64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x07)
        .collect();

    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "Sign",
            not_utf8(1),
            "SignRequest",
            "SignRequest.key_id: invalid string value: data is not UTF-8 encoded",
        ),
        (
            "Fingerprint",
            tenant_not_utf8,
            "FingerprintRequest",
            "FingerprintRequest.tenant_id: invalid string value",
        ),
        (
            "SignBatch",
            batch,
            "SignBatchRequest",
            "SignBatchRequest.items: SignRequest.key_id: invalid string value",
        ),
        (
            "Sign",
            truncated,
            "SignRequest",
            "SignRequest.message_crc32c: ",
        ),
        ("Sign", garbage.clone(), "SignRequest", ""),
        ("GetPublicKey", garbage, "GetPublicKeyRequest", ""),
        // key_id says 200 bytes follow; 2 do.
        (
            "Sign",
            vec![0x0a, 200, 1, b'e', b'd'],
            "SignRequest",
            "SignRequest.key_id: ",
        ),
        // key_id sent as a varint.
        (
            "Sign",
            vec![0x08, 1],
            "SignRequest",
            "SignRequest.key_id: invalid wire type",
        ),
        // Wire type 7 does not exist.
        (
            "ListKeys",
            vec![0x0f],
            "ListKeysRequest",
            "invalid wire type value: 7",
        ),
    ];
    for (rpc, body, message_type, detail) in &cases {
        let status = call_raw(channel.clone(), rpc, body.clone())
            .await
            .expect_err("an undecodable request is refused");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{rpc} {body:?}: {status:?}"
        );
        let prefix = format!("the request is not a valid {message_type}: ");
        assert!(
            status.message().starts_with(&prefix) && status.message().contains(detail),
            "{rpc}: {}",
            status.message()
        );
    }

    // It keeps serving, on the same connection and a new one.
    let verifier = Verifier::fetch(channel.clone()).await;
    for channel in [channel, agent.channel().await] {
        let signed = call_raw(
            channel,
            "Sign",
            common::requests::sign_request("ec", b"still here").encode_to_vec(),
        )
        .await
        .expect("a valid Sign after the refusals");
        let signed = SignResponse::decode(&signed[..]).expect("a SignResponse");
        assert!(verifier.verify("ec", b"still here", &signed.signature));
    }

    let (exit, log) = tokio::task::spawn_blocking(move || agent.stop())
        .await
        .expect("stop");
    assert!(exit.success(), "{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON log line"))
        .collect();
    let refusals: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| {
            line["fields"]["message"] == "refused a request that is not a valid protobuf message"
        })
        .collect();
    assert_eq!(refusals.len(), cases.len(), "one line per refusal:\n{log}");
    let warnings = lines
        .iter()
        .filter(|line| line["level"] == "WARN" || line["level"] == "ERROR")
        .count();
    assert_eq!(
        warnings,
        cases.len(),
        "nothing else is logged for them:\n{log}"
    );
    for (line, (_, _, message_type, detail)) in refusals.iter().zip(&cases) {
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(line["fields"]["message_type"], *message_type, "{line}");
        let error = line["fields"]["error"].as_str().expect("error field");
        assert!(error.contains(detail), "{line}");
    }
    let marker = String::from_utf8_lossy(MARKER);
    assert!(!log.contains(&*marker), "request bytes in the log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_skipped() {
    let token = TestToken::new().with_verifiable_keys();
    let agent = token.start_agent().await;
    let channel = agent.channel().await;
    let verifier = Verifier::fetch(channel.clone()).await;
    let mut body = common::requests::sign_request("ed", b"from a newer client").encode_to_vec();
    // Field 99 (varint 1) and field 100 (bytes "x"), which signer.proto does not define.
    body.extend_from_slice(&[0x98, 0x06, 1, 0xa2, 0x06, 1, b'x']);
    let signed = call_raw(channel, "Sign", body)
        .await
        .expect("unknown fields are skipped");
    let signed = SignResponse::decode(&signed[..]).expect("a SignResponse");
    assert!(verifier.verify("ed", b"from a newer client", &signed.signature));
}
