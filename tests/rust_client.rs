//! The `signet-client` crate against the real agent on a real SoftHSM2 token: every key type
//! signs and verifies with an independent library, typed errors keep their gRPC code, TLS with
//! a client certificate (made with rcgen) works, and a damaged message or signature in transit
//! (a proxy that flips one bit) is caught by the CRC32C checks.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::ca::Ca;
use common::ports::free_port;
use common::{verify_hmac, TestToken, HMAC_SECRET};
use signet_client::{Algorithm, Anchor, Client, Code, Error, SignatureFormat, Tls, Zeroizing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_type_signs_and_verifies_independently() {
    use p256::ecdsa::signature::Verifier as _;
    let token = TestToken::new().with_verifiable_keys();
    let agent = token.start_agent().await;
    let client = Client::connect_unix(&agent.socket).await.expect("connect");
    let message = b"signed through signet-client".as_slice();

    let ed = client.public_key("ed").await.expect("ed public key");
    assert_eq!(ed.algorithm, Algorithm::Ed25519);
    let raw: [u8; 32] = ed.raw.as_slice().try_into().expect("32 bytes");
    let ed_key = ed25519_dalek::VerifyingKey::from_bytes(&raw).expect("Ed25519 key");
    assert_eq!(common::ed25519_from_jwk(&ed.jwk), ed_key);
    let signature = client.sign("ed", message).await.expect("sign ed");
    assert_eq!(
        (
            signature.algorithm,
            signature.format,
            signature.key_id.as_str()
        ),
        (Algorithm::Ed25519, SignatureFormat::Raw, "ed")
    );
    let parsed = ed25519_dalek::Signature::from_slice(&signature.bytes).expect("64 bytes");
    ed_key
        .verify_strict(message, &parsed)
        .expect("Ed25519 signature verifies");

    let ec = client.public_key("ec").await.expect("ec public key");
    assert_eq!(ec.algorithm, Algorithm::EcdsaP256Sha256);
    let ec_key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&ec.raw).expect("P-256 key");
    assert_eq!(common::p256_from_jwk(&ec.jwk), ec_key);
    let raw_sig = client.sign("ec", message).await.expect("sign ec");
    let parsed = p256::ecdsa::Signature::from_slice(&raw_sig.bytes).expect("r||s");
    ec_key
        .verify(message, &parsed)
        .expect("P-256 r||s verifies");
    let der_sig = client.sign_der("ec", message).await.expect("sign ec DER");
    assert_eq!(der_sig.format, SignatureFormat::Der);
    let parsed = p256::ecdsa::Signature::from_der(&der_sig.bytes).expect("DER");
    ec_key.verify(message, &parsed).expect("P-256 DER verifies");

    let mac = client.sign("hmac", message).await.expect("sign hmac");
    assert_eq!(mac.algorithm, Algorithm::HmacSha256);
    assert!(verify_hmac(message, &mac.bytes), "HMAC verifies");
    let empty = client
        .sign("hmac", Vec::new())
        .await
        .expect("empty message");
    assert!(verify_hmac(b"", &empty.bytes));

    // The SWT3 SDK's published vector, and its HMAC checked with the hmac crate.
    let anchor = Anchor::new("ENCLAVE_ALPHA", "AI-INF.1", [1.0, 1.0, 0.0])
        .at(1_774_800_000_000)
        .agent_id("agent-007");
    let witness = client
        .fingerprint("hmac", &anchor)
        .await
        .expect("fingerprint");
    assert_eq!(witness.fingerprint, "f7f20b581cbf");
    assert_eq!(witness.timestamp_ms, 1_774_800_000_000);
    let payload = format!("{}:agent-007", witness.fingerprint);
    let signature = hex::decode(&witness.signature).expect("hex");
    assert!(
        verify_hmac(payload.as_bytes(), &signature),
        "witness HMAC verifies"
    );

    let keys = client.list_keys().await.expect("list");
    let listed: Vec<_> = keys
        .iter()
        .map(|k| (k.key_id.as_str(), k.algorithm, k.has_public_key))
        .collect();
    assert_eq!(
        listed,
        [
            ("ec", Algorithm::EcdsaP256Sha256, true),
            ("ed", Algorithm::Ed25519, true),
            ("hmac", Algorithm::HmacSha256, false),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_typed_errors_with_the_grpc_code() {
    let token = TestToken::new().with_verifiable_keys();
    let agent = token.start_agent().await;
    let client = Client::connect_unix(&agent.socket).await.expect("connect");

    let missing = client
        .sign("missing", b"m".as_slice())
        .await
        .expect_err("no key");
    assert!(matches!(missing, Error::NotFound { .. }), "{missing:?}");
    assert_eq!(missing.code(), Code::NotFound);
    assert!(missing.to_string().starts_with("NOT_FOUND: "), "{missing}");
    assert!(!missing.message().is_empty());

    let der = client
        .sign_der("ed", b"m".as_slice())
        .await
        .expect_err("DER of Ed25519");
    assert!(matches!(der, Error::InvalidArgument { .. }), "{der:?}");
    assert_eq!(der.code(), Code::InvalidArgument);

    let anchor = Anchor::new("tenant:with:colons", "AI-INF.1", [1.0, 2.0, 3.0]);
    let bad = client
        .fingerprint("hmac", &anchor)
        .await
        .expect_err("bad tenant");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");

    let hmac = client.public_key("hmac").await.expect_err("no public key");
    assert!(matches!(hmac, Error::FailedPrecondition { .. }), "{hmac:?}");

    // A deadline that has passed before any answer can come.
    let hurried = client.clone().with_timeout(Duration::from_nanos(1));
    let late = hurried
        .sign("ed", b"m".as_slice())
        .await
        .expect_err("too late");
    assert!(matches!(late, Error::DeadlineExceeded { .. }), "{late:?}");
    assert!(late.is_retryable());

    let nowhere = token.dir.path().join("no-agent.sock");
    let transport = Client::connect_unix(&nowhere).await.expect_err("no agent");
    assert!(
        matches!(transport, Error::Transport { .. }),
        "{transport:?}"
    );
    assert_eq!(transport.code(), Code::Unavailable);
    assert!(
        transport
            .to_string()
            .starts_with("cannot connect to the agent: "),
        "{transport}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_client_certificate_identifies_the_caller() {
    let ca = Ca::new("signet test CA");
    let (server_cert, server_key) = ca.issue("signet", &["localhost", "127.0.0.1"]);
    let (cert, key) = ca.issue("witness-1", &[]);
    let token = TestToken::new().with_verifiable_keys();
    let dir = token.dir.path();
    std::fs::write(dir.join("server.pem"), &server_cert).expect("write");
    std::fs::write(dir.join("server.key"), &server_key).expect("write");
    std::fs::write(dir.join("ca.pem"), ca.cert.pem()).expect("write");
    let port = free_port();
    token.edit_config(|text| {
        text.replace(
            "[backend]",
            &format!(
                "[[listen]]\ntype = \"tls\"\naddress = \"127.0.0.1:{port}\"\ncert = \"server.pem\"\n\
                 key = \"server.key\"\nclient_ca = \"ca.pem\"\n\n\
                 [[clients]]\nname = \"witness\"\ncert_cn = \"witness-1\"\nkeys = [\"ed\"]\n\
                 operations = [\"sign\"]\n\n[backend]"
            ),
        )
    });
    let agent = token.start_agent().await;
    let ed_key = {
        let local = Client::connect_unix(&agent.socket).await.expect("unix");
        let raw = local.public_key("ed").await.expect("public key").raw;
        let raw: [u8; 32] = raw.as_slice().try_into().expect("32 bytes");
        ed25519_dalek::VerifyingKey::from_bytes(&raw).expect("Ed25519 key")
    };
    let message = b"over mutual TLS".as_slice();

    // The agent's certificate names 127.0.0.1, so the address alone is enough...
    let client = Client::connect_tls(
        &format!("127.0.0.1:{port}"),
        ca.cert.pem(),
        cert.clone(),
        key.clone().into_bytes(),
    )
    .await
    .expect("mutual TLS");
    let signature = client.sign("ed", message).await.expect("granted");
    let parsed = ed25519_dalek::Signature::from_slice(&signature.bytes).expect("64 bytes");
    ed_key.verify_strict(message, &parsed).expect("verifies");

    // ...and the expected name can be given; the policy binds this certificate to `ed`.
    let tls =
        Tls::new(ca.cert.pem(), cert, Zeroizing::new(key.into_bytes())).server_name("localhost");
    assert!(!format!("{tls:?}").contains("PRIVATE KEY"), "{tls:?}");
    let named = Client::connect_tls_with(&format!("https://127.0.0.1:{port}"), tls)
        .await
        .expect("mutual TLS, named");
    let denied = named.sign("ec", message).await.expect_err("not its key");
    assert!(
        matches!(denied, Error::PermissionDenied { .. }),
        "{denied:?}"
    );
    assert_eq!(denied.code(), Code::PermissionDenied);

    // A certificate from another CA never gets a connection that signs.
    let (stranger_cert, stranger_key) = Ca::new("another CA").issue("witness-1", &[]);
    let stranger = Client::connect_tls(
        &format!("127.0.0.1:{port}"),
        ca.cert.pem(),
        stranger_cert,
        stranger_key.into_bytes(),
    )
    .await;
    let refused = match stranger {
        Ok(client) => client.sign("ed", message).await.expect_err("refused"),
        Err(e) => e,
    };
    // With TLS 1.3 the client finishes its side of the handshake first; the agent's refusal
    // then closes the connection before any call is read: a transport error either way.
    assert!(matches!(refused, Error::Transport { .. }), "{refused:?}");
    assert_eq!(refused.code(), Code::Unavailable);
}

/// A unix-socket proxy in front of the agent that flips one bit of the first occurrence of
/// `upstream` in what the client sends and of `downstream` in what the agent answers.
fn corrupting_proxy(listen: PathBuf, agent: PathBuf, upstream: Vec<u8>, downstream: Vec<u8>) {
    let listener = tokio::net::UnixListener::bind(listen).expect("bind the proxy");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::UnixStream::connect(&agent)
                .await
                .expect("agent");
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pump(client_read, server_write, upstream.clone()));
            tokio::spawn(pump(server_read, client_write, downstream.clone()));
        }
    });
}

/// Copies `from` to `to`, flipping the lowest bit of the first byte of the first `pattern`.
/// Bytes that may start the pattern are held back until more come, or for a moment.
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    pattern: Vec<u8>,
) {
    let (mut pending, mut done, mut chunk) = (Vec::new(), false, vec![0u8; 16 << 10]);
    loop {
        let read = tokio::time::timeout(Duration::from_millis(50), from.read(&mut chunk)).await;
        let keep = match read {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                pending.extend_from_slice(&chunk[..n]);
                if !done {
                    if let Some(at) = pending.windows(pattern.len()).position(|w| w == pattern) {
                        pending[at] ^= 1;
                        done = true;
                    }
                }
                // The longest end of `pending` that could start the pattern waits.
                let longest = if done {
                    0
                } else {
                    pattern.len().min(pending.len())
                };
                (1..longest)
                    .rev()
                    .find(|&k| pending.ends_with(&pattern[..k]))
                    .unwrap_or(0)
            }
            Err(_) => 0,
        };
        let send = pending.len() - keep;
        if to.write_all(&pending[..send]).await.is_err() {
            return;
        }
        pending.drain(..send);
    }
    let _ = to.write_all(&pending).await;
    let _ = to.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bit_flipped_in_transit_is_caught_by_the_crc32c_checks() {
    use hmac::Mac;
    let token = TestToken::new().with_verifiable_keys();
    let agent = token.start_agent().await;
    let damaged_request = b"this message is damaged on its way to the agent".to_vec();
    let damaged_answer = b"this message's signature is damaged on its way back".to_vec();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).expect("key");
    mac.update(&damaged_answer);
    let expected = mac.finalize().into_bytes().to_vec();
    let proxy = token.dir.path().join("proxy.sock");
    corrupting_proxy(
        proxy.clone(),
        agent.socket.clone(),
        damaged_request.clone(),
        expected,
    );
    let client = Client::connect_unix(&proxy)
        .await
        .expect("connect through the proxy");

    // Untouched bytes pass.
    let fine = client
        .sign("hmac", b"untouched".as_slice())
        .await
        .expect("sign");
    assert!(verify_hmac(b"untouched", &fine.bytes));

    // The message's CRC32C travels with it: the agent refuses what arrived, signing nothing.
    let refused = client
        .sign("hmac", damaged_request)
        .await
        .expect_err("damaged request");
    assert!(
        matches!(refused, Error::InvalidArgument { .. }),
        "{refused:?}"
    );
    assert!(
        refused.message().to_lowercase().contains("crc32c"),
        "{refused:?}"
    );

    // The signature's CRC32C is checked here: a damaged signature is never returned.
    let corrupted = client
        .sign("hmac", damaged_answer)
        .await
        .expect_err("damaged answer");
    assert!(
        matches!(corrupted, Error::Corrupted { .. }),
        "{corrupted:?}"
    );
    assert_eq!(corrupted.code(), Code::DataLoss);
    assert!(corrupted.is_retryable());
}
