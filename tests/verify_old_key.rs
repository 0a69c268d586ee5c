//! An HMAC key created before verification existed (`CKA_VERIFY = false`, as `signet keys`
//! made them until now) is still served for signing, and `Verify` on it answers
//! `FAILED_PRECONDITION` saying what to do. The key is made here with the PKCS#11 module
//! directly, exactly as the old `keys generate --type hmac-sha256` made it; setting
//! `CKA_VERIFY = true` on it afterwards (the README's remedy) makes it verify.

mod common;

use common::requests::sign_request;
use common::TestToken;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use signet::grpc::proto::VerifyRequest;
use tonic::Code;

/// Generates `label` on the token with the attributes the old key commands set.
fn generate_without_verify(token: &TestToken, label: &str) {
    let (pkcs11, session) = token.open_session();
    let template = [
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(b"old-hmac-id-0001".to_vec()),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Derive(false),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::ValueLen(32.into()),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::Verify(false),
    ];
    session
        .generate_key(&Mechanism::GenericSecretKeyGen, &template)
        .expect("generate");
    drop(session);
    pkcs11.finalize().expect("finalise");
}

/// Sets `CKA_VERIFY = true` on the key `label`, as the README says an operator can where the
/// token allows it.
fn enable_verify(token: &TestToken, label: &str) {
    let (pkcs11, session) = token.open_session();
    let found = session
        .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .expect("find");
    assert_eq!(found.len(), 1);
    session
        .update_attributes(found[0], &[Attribute::Verify(true)])
        .expect("SoftHSM2 lets a logged-in user set CKA_VERIFY");
    drop(session);
    pkcs11.finalize().expect("finalise");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_without_cka_verify_still_signs_and_verify_says_what_to_do() {
    let token = TestToken::new();
    generate_without_verify(&token, "old-hmac");
    let agent = token.start_agent().await;
    let mut client = agent.client().await;
    let signature = client
        .sign(sign_request("old-hmac", b"m"))
        .await
        .expect("an old key still signs")
        .into_inner()
        .signature;
    let request = VerifyRequest {
        key_id: "old-hmac".into(),
        message: b"m".to_vec(),
        signature,
        ..Default::default()
    };
    let status = client
        .verify(request.clone())
        .await
        .expect_err("no CKA_VERIFY");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status
            .message()
            .contains("key 'old-hmac' was created without CKA_VERIFY; see the README"),
        "{status:?}"
    );
    let (exit, log) = tokio::task::spawn_blocking(move || agent.stop())
        .await
        .expect("stop");
    assert!(exit.success(), "{log}");

    // The README's remedy: set the attribute; the same key then verifies.
    enable_verify(&token, "old-hmac");
    let agent = token.start_agent().await;
    let verdict = agent
        .client()
        .await
        .verify(request)
        .await
        .expect("Verify")
        .into_inner();
    assert!(verdict.valid);
    let (exit, log) = tokio::task::spawn_blocking(move || agent.stop())
        .await
        .expect("stop");
    assert!(exit.success(), "{log}");
}
