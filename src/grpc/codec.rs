//! The protobuf codec of the `signet.v1` stubs: prost's encoding and decoding, except that a
//! request that does not decode (bytes that are not protobuf, a truncated message, a string that
//! is not UTF-8, a wrong wire type) is refused with `INVALID_ARGUMENT` naming the message type
//! and, where prost knows it, the field, and is logged once. tonic's own codec answers
//! `INTERNAL` with prost's text and logs nothing.
//!
//! Fields this agent does not know are skipped, as protobuf requires, so clients built from a
//! newer `signer.proto` keep working. The size limit is checked by tonic before the codec runs
//! (see `oversize`), and the health and reflection services keep their own codecs.

use std::marker::PhantomData;

use prost::{DecodeError, Message, Name};
use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
use tonic::{Code, Status};

use crate::error::Error;

/// The codec the generated client and server use (`codec_path` in `build.rs`): `T` is encoded,
/// `U` decoded.
#[derive(Debug, Clone, Copy)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(PhantomData)
    }
}

/// Decodes a `U` with prost; a failure becomes the status [`refusal`] describes.
#[derive(Debug, Clone, Copy)]
pub struct CheckedDecoder<U>(PhantomData<U>);

impl<U: Message + Name + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| refusal(U::NAME, &e))
    }
}

/// The status for a message of type `name` that did not decode, logged once when it is a
/// request (the agent's side). A response the command-line client cannot decode is the
/// agent's fault, not the caller's: `INTERNAL`, as gRPC and tonic answer it.
///
/// Which side decodes is told by the name: every request of `signet.v1` is named `…Request`
/// and no response is (a unit test holds the proto to that).
fn refusal(name: &'static str, error: &DecodeError) -> Status {
    let why = describe(error);
    if is_request(name) {
        // The description names types, fields and prost's reason; never the request's bytes.
        tracing::warn!(
            message_type = name,
            error = %why,
            "refused a request that is not a valid protobuf message"
        );
        Status::from(Error::InvalidArgument(format!(
            "the request is not a valid {name}: {why}"
        )))
    } else {
        // The command-line client's side: no agent log to point to, so the reason stays.
        Status::new(
            Code::Internal,
            format!("the answer is not a valid {name}: {why}"),
        )
    }
}

fn is_request(name: &str) -> bool {
    name.ends_with("Request")
}

/// prost's description of `error`, with the field path written from the outside in:
/// `SignBatchRequest.items: SignRequest.key_id: invalid string value: …` (prost writes the
/// innermost field first).
fn describe(error: &DecodeError) -> String {
    let text = error.to_string();
    let text = text
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(&text);
    let mut path = Vec::new();
    let mut rest = text;
    while let Some((head, tail)) = rest.split_once(": ") {
        if !is_field(head) {
            break;
        }
        path.push(head);
        rest = tail;
    }
    path.reverse();
    path.push(rest);
    path.join(": ")
}

/// Whether `s` is `Message.field`, as prost names a field in its error path.
fn is_field(s: &str) -> bool {
    let ident = |p: &str| {
        p.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    s.split_once('.')
        .is_some_and(|(message, field)| ident(message) && ident(field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::proto::{FingerprintRequest, SignBatchRequest, SignRequest, SignResponse};

    fn decode<U: Message + Name + Default>(bytes: &[u8]) -> Result<U, Status> {
        U::decode(bytes).map_err(|e| refusal(U::NAME, &e))
    }

    #[test]
    fn a_string_that_is_not_utf8_names_its_field() {
        // key_id (field 1, length-delimited) = ff fe.
        let status = decode::<SignRequest>(&[0x0a, 2, 0xff, 0xfe]).expect_err("not UTF-8");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "the request is not a valid SignRequest: SignRequest.key_id: invalid string value: \
             data is not UTF-8 encoded"
        );
        let status =
            decode::<FingerprintRequest>(&[0x12, 1, 0x80]).expect_err("tenant_id not UTF-8");
        assert!(
            status
                .message()
                .contains("FingerprintRequest.tenant_id: invalid string"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn a_nested_field_is_named_from_the_outside_in() {
        // items (field 1) = SignRequest { key_id = ff }.
        let status = decode::<SignBatchRequest>(&[0x0a, 3, 0x0a, 1, 0xff]).expect_err("item");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "the request is not a valid SignBatchRequest: SignBatchRequest.items: \
             SignRequest.key_id: invalid string value: data is not UTF-8 encoded"
        );
    }

    #[test]
    fn truncation_garbage_and_wrong_wire_types_are_invalid_arguments() {
        for bytes in [
            &[0x0a, 10, b'e', b'd'][..], // key_id's length runs past the end
            &[0x0a][..],                 // a tag and no value
            &[0x20, 0xff][..],           // a varint cut off
            &[0xff, 0xff, 0xff][..],     // garbage
            &[0x0f][..],                 // wire type 7
            &[0x08, 1][..],              // key_id sent as a varint
            &[0x00][..],                 // field number 0
        ] {
            let status = decode::<SignRequest>(bytes).expect_err("undecodable");
            assert_eq!(status.code(), Code::InvalidArgument, "{bytes:?}");
            assert!(
                status
                    .message()
                    .starts_with("the request is not a valid SignRequest: "),
                "{}",
                status.message()
            );
        }
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // key_id = "ed", message = "m", then field 99 (varint 1) and field 100 (bytes "x").
        let bytes = [
            0x0a, 2, b'e', b'd', 0x12, 1, b'm', 0x98, 0x06, 1, 0xa2, 0x06, 1, b'x',
        ];
        let request = decode::<SignRequest>(&bytes).expect("unknown fields are skipped");
        assert_eq!(
            (request.key_id.as_str(), &request.message[..]),
            ("ed", &b"m"[..])
        );
    }

    #[test]
    fn an_undecodable_response_is_internal() {
        let status = decode::<SignResponse>(&[0xff]).expect_err("garbage");
        assert_eq!(status.code(), Code::Internal);
        assert!(status
            .message()
            .starts_with("the answer is not a valid SignResponse"));
    }

    #[test]
    fn every_request_and_no_response_is_named_request() {
        let proto = include_str!("../../proto/signet/v1/signer.proto");
        let rpcs: Vec<(&str, &str)> = proto
            .lines()
            .filter_map(|line| line.trim().strip_prefix("rpc "))
            .map(|rpc| {
                let (_, types) = rpc.split_once('(').expect("rpc Name(Request)");
                let (input, output) = types.split_once(") returns (").expect("returns");
                (input, output.trim_end_matches(");"))
            })
            .collect();
        assert_eq!(rpcs.len(), 10, "{rpcs:?}");
        for (input, output) in rpcs {
            assert!(is_request(input), "{input}");
            assert!(!is_request(output), "{output}");
        }
    }
}
