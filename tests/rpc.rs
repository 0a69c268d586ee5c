//! Every RPC for every key type through the real agent on a real SoftHSM2 token; every signature
//! and every public key is checked with an independent library (ed25519-dalek, p256).

mod common;

use common::{b64, p256_from_jwk, TestToken};
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use p256::ecdsa::signature::Verifier as _;
use signet::grpc::proto::signer_client::SignerClient;
use signet::grpc::proto::{
    Algorithm, FingerprintRequest, GetPublicKeyRequest, ListKeysRequest, SignRequest,
    SignatureFormat,
};

async fn public_key(
    client: &mut SignerClient<tonic::transport::Channel>,
    key_id: &str,
) -> signet::grpc::proto::GetPublicKeyResponse {
    client
        .get_public_key(GetPublicKeyRequest {
            key_id: key_id.into(),
        })
        .await
        .expect("GetPublicKey")
        .into_inner()
}

fn sign_request(key_id: &str, message: &[u8]) -> SignRequest {
    SignRequest {
        key_id: key_id.into(),
        message: message.to_vec(),
        ..Default::default()
    }
}

/// The RFC 7638 thumbprint of a canonical JWK, computed here independently of the agent.
fn rfc7638_thumbprint(canonical: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_signs_and_every_public_encoding_verifies() {
    let token = TestToken::new().with_demo_keys();
    let agent = token.start_agent().await;
    let mut client = agent.client().await;

    let public = public_key(&mut client, "ed").await;
    assert_eq!(public.key_id, "ed");
    assert_eq!(public.algorithm(), Algorithm::Ed25519);
    let raw: [u8; 32] = public.raw.as_slice().try_into().expect("32-byte key");
    let from_raw = ed25519_dalek::VerifyingKey::from_bytes(&raw).expect("raw key");
    let from_spki =
        ed25519_dalek::VerifyingKey::from_public_key_der(&public.spki_der).expect("spki");
    let from_pem = ed25519_dalek::VerifyingKey::from_public_key_pem(&public.pem).expect("pem");
    let jwk: serde_json::Value = serde_json::from_str(&public.jwk).expect("jwk json");
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["kid"], "ed");
    assert_eq!(jwk["alg"], "EdDSA");
    assert_eq!(jwk["key_ops"], serde_json::json!(["verify"]));
    let jwk_x: [u8; 32] = b64(&jwk["x"]).try_into().expect("32-byte x");
    let from_jwk = ed25519_dalek::VerifyingKey::from_bytes(&jwk_x).expect("jwk key");
    assert_eq!(from_raw, from_spki);
    assert_eq!(from_raw, from_pem);
    assert_eq!(from_raw, from_jwk);
    // RFC 7638 thumbprint, computed here independently.
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        jwk["x"].as_str().expect("x")
    );
    assert_eq!(public.jwk_thumbprint, rfc7638_thumbprint(&canonical));

    for message in [
        b"".to_vec(),
        b"hello".to_vec(),
        vec![0xa5; 64],
        vec![7; 100_000],
    ] {
        let response = client
            .sign(sign_request("ed", &message))
            .await
            .expect("Sign")
            .into_inner();
        assert_eq!(response.key_id, "ed");
        assert_eq!(response.algorithm(), Algorithm::Ed25519);
        assert_eq!(response.signature_format(), SignatureFormat::Raw);
        let signature =
            ed25519_dalek::Signature::from_slice(&response.signature).expect("64 bytes");
        from_jwk
            .verify_strict(&message, &signature)
            .expect("the Ed25519 signature verifies with ed25519-dalek");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p256_signs_raw_and_der_and_every_public_encoding_verifies() {
    use p256::pkcs8::DecodePublicKey as _;
    let token = TestToken::new().with_demo_keys();
    let agent = token.start_agent().await;
    let mut client = agent.client().await;

    let public = public_key(&mut client, "ec").await;
    assert_eq!(public.algorithm(), Algorithm::EcdsaP256Sha256);
    assert_eq!(public.raw.len(), 65);
    let from_raw = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public.raw).expect("sec1");
    let from_spki = p256::ecdsa::VerifyingKey::from_public_key_der(&public.spki_der).expect("spki");
    let from_pem = p256::ecdsa::VerifyingKey::from_public_key_pem(&public.pem).expect("pem");
    let from_jwk = p256_from_jwk(&public.jwk);
    assert_eq!(from_raw, from_spki);
    assert_eq!(from_raw, from_pem);
    assert_eq!(from_raw, from_jwk);
    let jwk: serde_json::Value = serde_json::from_str(&public.jwk).expect("jwk json");
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert_eq!(
        (jwk["kid"].as_str(), jwk["alg"].as_str()),
        (Some("ec"), Some("ES256"))
    );
    assert_eq!(jwk["key_ops"], serde_json::json!(["verify"]));
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["x"].as_str().expect("x"),
        jwk["y"].as_str().expect("y")
    );
    assert_eq!(public.jwk_thumbprint, rfc7638_thumbprint(&canonical));

    for message in [
        b"".to_vec(),
        b"hello".to_vec(),
        vec![0x5a; 64],
        vec![1; 300_000],
    ] {
        let raw = client
            .sign(sign_request("ec", &message))
            .await
            .expect("Sign raw")
            .into_inner();
        assert_eq!(raw.signature_format(), SignatureFormat::Raw);
        assert_eq!(raw.signature.len(), 64, "JWS ES256 form is r||s");
        let signature = p256::ecdsa::Signature::from_slice(&raw.signature).expect("r||s");
        from_jwk
            .verify(&message, &signature)
            .expect("the raw ECDSA signature verifies with p256 over SHA-256(message)");

        let der = client
            .sign(SignRequest {
                signature_format: Some(SignatureFormat::Der.into()),
                ..sign_request("ec", &message)
            })
            .await
            .expect("Sign DER")
            .into_inner();
        assert_eq!(der.signature_format(), SignatureFormat::Der);
        let signature = p256::ecdsa::DerSignature::try_from(der.signature.as_slice()).expect("DER");
        from_spki
            .verify(&message, &signature)
            .expect("the DER ECDSA signature verifies with p256");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_signs_like_an_independent_hmac() {
    use hmac::Mac;
    let secret = "b5e0c1f3a9d84e7f6a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081";
    let token = TestToken::new();
    token.import_hmac("witness", secret);
    let agent = token.start_agent().await;
    let mut client = agent.client().await;
    for message in [
        b"".to_vec(),
        b"b16bf9139c16:agent-007".to_vec(),
        vec![9; 65_536],
    ] {
        let response = client
            .sign(sign_request("witness", &message))
            .await
            .expect("Sign")
            .into_inner();
        assert_eq!(response.algorithm(), Algorithm::HmacSha256);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(&message);
        mac.verify_slice(&response.signature)
            .expect("the HMAC matches the hmac crate's");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_keys_names_every_served_key() {
    let token = TestToken::new().with_demo_keys();
    let agent = token.start_agent().await;
    let keys = agent
        .client()
        .await
        .list_keys(ListKeysRequest {})
        .await
        .expect("ListKeys")
        .into_inner()
        .keys;
    let summary: Vec<_> = keys
        .iter()
        .map(|k| (k.key_id.as_str(), k.algorithm(), k.has_public_key))
        .collect();
    assert_eq!(
        summary,
        [
            ("ec", Algorithm::EcdsaP256Sha256, true),
            ("ed", Algorithm::Ed25519, true),
            ("hmac", Algorithm::HmacSha256, false),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprint_uses_the_agent_clock_when_asked() {
    let secret = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
    let token = TestToken::new();
    token.import_hmac("witness", secret);
    let agent = token.start_agent().await;
    let before = now_ms();
    let response = agent
        .client()
        .await
        .fingerprint(FingerprintRequest {
            key_id: "witness".into(),
            tenant_id: "ACME".into(),
            procedure_id: "AI-INF.1".into(),
            factor_a: 1.0,
            factor_b: 2.0,
            factor_c: 0.0,
            timestamp_ms: 0,
            agent_id: Some("agent-1".into()),
        })
        .await
        .expect("Fingerprint")
        .into_inner();
    let after = now_ms();
    assert!(
        (before..=after).contains(&response.timestamp_ms),
        "timestamp from the agent's clock"
    );
    let fp = swt3_ai::mint_fingerprint("ACME", "AI-INF.1", 1.0, 2.0, 0.0, response.timestamp_ms);
    assert_eq!(response.fingerprint, fp);
    assert_eq!(
        response.signature,
        swt3_ai::sign_payload(secret, &fp, Some("agent-1"))
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let token = TestToken::new().with_demo_keys();
    let agent = token.start_agent().await;

    let health = HealthClient::new(agent.channel().await)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(agent.channel().await)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = stream
        .message()
        .await
        .expect("stream")
        .expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for wanted in [
        "signet.v1.Signer",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing from {names:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_persist_across_restarts() {
    let token = TestToken::new().with_demo_keys();
    let mut before = Vec::new();
    {
        let agent = token.start_agent().await;
        let mut client = agent.client().await;
        for key in ["ed", "ec"] {
            let public = public_key(&mut client, key).await;
            before.push(public.raw);
        }
        let (status, log) = agent.stop();
        assert!(status.success(), "clean exit on SIGTERM: {status}\n{log}");
    }
    let agent = token.start_agent().await;
    let mut client = agent.client().await;
    let message = b"signed after a restart";
    let ed = public_key(&mut client, "ed").await;
    assert_eq!(ed.raw, before[0], "same Ed25519 public key after restart");
    let ed_key =
        ed25519_dalek::VerifyingKey::from_bytes(&ed.raw.try_into().expect("32")).expect("key");
    let sig = client
        .sign(sign_request("ed", message))
        .await
        .expect("Sign")
        .into_inner();
    ed_key
        .verify_strict(
            message,
            &ed25519_dalek::Signature::from_slice(&sig.signature).expect("sig"),
        )
        .expect("verifies after restart");

    let ec = public_key(&mut client, "ec").await;
    assert_eq!(ec.raw, before[1], "same P-256 public key after restart");
    let ec_key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&ec.raw).expect("key");
    let sig = client
        .sign(sign_request("ec", message))
        .await
        .expect("Sign")
        .into_inner();
    ec_key
        .verify(
            message,
            &p256::ecdsa::Signature::from_slice(&sig.signature).expect("sig"),
        )
        .expect("verifies after restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_removes_the_socket_and_exits_zero() {
    let token = TestToken::new().with_demo_keys();
    let agent = token.start_agent().await;
    let socket = agent.socket.clone();
    assert!(socket.exists());
    let (status, log) = agent.stop();
    assert!(status.success(), "exit status {status}\n{log}");
    assert!(!socket.exists(), "the socket file is removed at shutdown");
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !log.contains(common::TEST_PIN),
        "the PIN never appears in the log"
    );
}
