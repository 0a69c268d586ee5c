//! A table of bad requests, each checked for its gRPC code and message, against the real agent.

mod common;

use common::TestToken;
use signet::grpc::proto::{FingerprintRequest, GetPublicKeyRequest, SignRequest};
use tonic::Code;

fn sign(key_id: &str, message: Vec<u8>, format: Option<i32>) -> SignRequest {
    SignRequest {
        key_id: key_id.into(),
        message,
        signature_format: format,
        message_crc32c: None,
    }
}

fn fingerprint(key_id: &str, edit: impl FnOnce(&mut FingerprintRequest)) -> FingerprintRequest {
    let mut r = FingerprintRequest {
        key_id: key_id.into(),
        tenant_id: "ACME".into(),
        procedure_id: "AI-INF.1".into(),
        factor_a: 1.0,
        factor_b: 1.0,
        factor_c: 0.0,
        timestamp_ms: 1_774_800_000_000,
        agent_id: None,
    };
    edit(&mut r);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_code_and_message() {
    let token = TestToken::with_config_extra("").with_demo_keys();
    // A 4 KiB limit keeps the oversized case cheap; the default (1 MiB) is tested below.
    let text = std::fs::read_to_string(&token.config).expect("config");
    std::fs::write(
        &token.config,
        format!("{text}\n[limits]\nmax_message_bytes = 4096\n"),
    )
    .expect("config");
    let agent = token.start_agent().await;
    let mut client = agent.client().await;

    let sign_cases: Vec<(&str, SignRequest, Code, &str)> = vec![
        (
            "unknown key",
            sign("nope", b"m".to_vec(), None),
            Code::NotFound,
            "no key with id 'nope'",
        ),
        (
            "empty key id",
            sign("", b"m".to_vec(), None),
            Code::InvalidArgument,
            "key_id must not be empty",
        ),
        (
            "oversized message",
            sign("ed", vec![0; 4097], None),
            Code::ResourceExhausted,
            "4097 bytes, over this agent's limit of 4096",
        ),
        (
            "DER for Ed25519",
            sign("ed", b"m".to_vec(), Some(2)),
            Code::InvalidArgument,
            "DER applies to ECDSA keys only",
        ),
        (
            "DER for HMAC",
            sign("hmac", b"m".to_vec(), Some(2)),
            Code::InvalidArgument,
            "DER applies to ECDSA keys only",
        ),
        (
            "explicit UNSPECIFIED format",
            sign("ec", b"m".to_vec(), Some(0)),
            Code::InvalidArgument,
            "SIGNATURE_FORMAT_UNSPECIFIED",
        ),
        (
            "unknown format number",
            sign("ec", b"m".to_vec(), Some(9)),
            Code::InvalidArgument,
            "signature_format 9 is not a known",
        ),
    ];
    let long_id = "k".repeat(257);
    let mut sign_cases = sign_cases;
    sign_cases.push((
        "key id over 256 bytes",
        sign(&long_id, b"m".to_vec(), None),
        Code::InvalidArgument,
        "key_id is 257 bytes; key ids are at most 256 bytes",
    ));
    for (name, request, code, message) in sign_cases {
        let status = client.sign(request).await.expect_err(name);
        assert_eq!(status.code(), code, "{name}: {status:?}");
        assert!(
            status.message().contains(message),
            "{name}: {:?} lacks {message:?}",
            status.message()
        );
    }
    // The limit is inclusive: exactly max_message_bytes is signed.
    client
        .sign(sign("ed", vec![0; 4096], None))
        .await
        .expect("a message at the limit is signed");

    let key_cases: Vec<(&str, &str, Code, &str)> = vec![
        (
            "HMAC has no public key",
            "hmac",
            Code::FailedPrecondition,
            "a symmetric key has no public key",
        ),
        (
            "unknown key",
            "nope",
            Code::NotFound,
            "no key with id 'nope'",
        ),
        (
            "empty key id",
            "",
            Code::InvalidArgument,
            "key_id must not be empty",
        ),
    ];
    for (name, key_id, code, message) in key_cases {
        let status = client
            .get_public_key(GetPublicKeyRequest {
                key_id: key_id.into(),
            })
            .await
            .expect_err(name);
        assert_eq!(status.code(), code, "{name}: {status:?}");
        assert!(
            status.message().contains(message),
            "{name}: {:?} lacks {message:?}",
            status.message()
        );
    }

    let fp_cases: Vec<(&str, FingerprintRequest, Code, &str)> = vec![
        (
            "Ed25519 key",
            fingerprint("ed", |_| {}),
            Code::FailedPrecondition,
            "needs an hmac-sha256 key",
        ),
        (
            "P-256 key",
            fingerprint("ec", |_| {}),
            Code::FailedPrecondition,
            "needs an hmac-sha256 key",
        ),
        (
            "unknown key",
            fingerprint("nope", |_| {}),
            Code::NotFound,
            "no key with id 'nope'",
        ),
        (
            "empty key id",
            fingerprint("", |_| {}),
            Code::InvalidArgument,
            "key_id must not be empty",
        ),
        (
            "empty tenant",
            fingerprint("hmac", |r| r.tenant_id.clear()),
            Code::InvalidArgument,
            "tenant_id must not be empty",
        ),
        (
            "empty procedure",
            fingerprint("hmac", |r| r.procedure_id.clear()),
            Code::InvalidArgument,
            "procedure_id must not be empty",
        ),
        (
            "':' in tenant",
            fingerprint("hmac", |r| r.tenant_id = "A:B".into()),
            Code::InvalidArgument,
            "tenant_id must not contain ':'",
        ),
        (
            "':' in procedure",
            fingerprint("hmac", |r| r.procedure_id = "AI:1".into()),
            Code::InvalidArgument,
            "procedure_id must not contain ':'",
        ),
        (
            "':' in agent id",
            fingerprint("hmac", |r| r.agent_id = Some("a:b".into())),
            Code::InvalidArgument,
            "agent_id must not contain ':'",
        ),
        (
            "empty agent id",
            fingerprint("hmac", |r| r.agent_id = Some(String::new())),
            Code::InvalidArgument,
            "agent_id is present but empty",
        ),
        (
            "NaN factor",
            fingerprint("hmac", |r| r.factor_a = f64::NAN),
            Code::InvalidArgument,
            "factor_a must be a finite number",
        ),
        (
            "+inf factor",
            fingerprint("hmac", |r| r.factor_b = f64::INFINITY),
            Code::InvalidArgument,
            "factor_b must be a finite number",
        ),
        (
            "-inf factor",
            fingerprint("hmac", |r| r.factor_c = f64::NEG_INFINITY),
            Code::InvalidArgument,
            "factor_c must be a finite number",
        ),
        (
            "factor beyond 2^63",
            fingerprint("hmac", |r| r.factor_a = 1e19),
            Code::InvalidArgument,
            "factor_a is out of range",
        ),
        (
            "negative timestamp",
            fingerprint("hmac", |r| r.timestamp_ms = -1),
            Code::InvalidArgument,
            "timestamp_ms must not be negative",
        ),
    ];
    for (name, request, code, message) in fp_cases {
        let status = client.fingerprint(request).await.expect_err(name);
        assert_eq!(status.code(), code, "{name}: {status:?}");
        assert!(
            status.message().contains(message),
            "{name}: {:?} lacks {message:?}",
            status.message()
        );
    }

    let log = agent.log_text();
    assert!(
        !log.contains(common::TEST_PIN),
        "the PIN never appears in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_limit_is_one_mebibyte() {
    let token = TestToken::new().with_demo_keys();
    let agent = token.start_agent().await;
    let mut client = agent.client().await;
    client
        .sign(sign("ed", vec![1; 1 << 20], None))
        .await
        .expect("exactly 1 MiB is signed");
    let status = client
        .sign(sign("ed", vec![1; (1 << 20) + 1], None))
        .await
        .expect_err("over 1 MiB");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status
            .message()
            .contains("over this agent's limit of 1048576 bytes"),
        "{}",
        status.message()
    );
    // Far beyond the limit, the transport refuses before the message is held in full.
    let status = client
        .sign(sign("ed", vec![1; 8 << 20], None))
        .await
        .expect_err("8 MiB");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}
