//! Fingerprint through the real agent, byte for byte, with an HMAC key imported as the SDK's key
//! string: the `swt3-ai` crate's published vectors, and generated inputs, ties and layout edges
//! against swt3-ai 0.7.8's own Python code (`tests/python/swt3_reference.py`); factors that
//! Python and JavaScript write differently are refused with INVALID_ARGUMENT naming the field.

mod common;

use std::process::Command;

use common::TestToken;
use signet::grpc::proto::FingerprintRequest;

/// SoftHSM2 refuses HMAC-SHA256 keys shorter than 32 bytes, so the SDK's 16-character test key
/// ("test-signing-key") cannot live on it; this is a 64-hex-character key, as SWT3 recommends.
const SECRET: &str = "7d1f0a9c3b5e48f2a6c1d0e9b8a7f6e5d4c3b2a1908f7e6d5c4b3a2918f7e6d5";

fn request(
    tenant: &str,
    procedure: &str,
    f: [f64; 3],
    ts: i64,
    agent: Option<&str>,
) -> FingerprintRequest {
    FingerprintRequest {
        key_id: "witness".into(),
        tenant_id: tenant.into(),
        procedure_id: procedure.into(),
        factor_a: f[0],
        factor_b: f[1],
        factor_c: f[2],
        timestamp_ms: ts,
        agent_id: agent.map(str::to_owned),
    }
}

/// One anchor's inputs.
type Input<'a> = (&'a str, &'a str, [f64; 3], i64, Option<&'a str>);

/// What swt3-ai 0.7.8 (Python) computes for each input: `mint_fingerprint` and `sign_payload`
/// with [`SECRET`].
fn python_sdk(inputs: &[Input]) -> Vec<(String, String)> {
    let lines: String = inputs
        .iter()
        .map(|(tenant, procedure, f, ts, agent)| {
            let hex = |v: f64| format!("{:016x}", v.to_bits());
            let line = serde_json::json!({
                "tenant": tenant, "procedure": procedure, "ts": ts, "agent": agent,
                "a": hex(f[0]), "b": hex(f[1]), "c": hex(f[2]), "secret": SECRET,
            });
            format!("{line}\n")
        })
        .collect();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/swt3_reference.py"
    );
    let mut command = Command::new(common::callers_python());
    command.arg(script).arg("anchor");
    let out = common::run_with_stdin(command, lines.as_bytes());
    common::assert_success(&out, "tests/python/swt3_reference.py anchor");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let answers: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let (fp, sig) = l.split_once('\t').expect("fingerprint TAB signature");
            (fp.to_owned(), sig.to_owned())
        })
        .collect();
    assert_eq!(answers.len(), inputs.len());
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_swt3_ai_on_published_and_generated_inputs() {
    let token = TestToken::new();
    token.import_hmac("witness", SECRET);
    let agent = token.start_agent().await;
    let mut client = agent.client().await;

    // The SDK's own fingerprint vectors (swt3-ai 0.8.0, src/lib.rs tests).
    let published: [(&str, &str, [f64; 3], i64, &str); 13] = [
        (
            "ENCLAVE_ALPHA",
            "AI-INF.1",
            [1.0, 1.0, 0.0],
            1774800000000,
            "f7f20b581cbf",
        ),
        (
            "AWS_NITRO_ENCLAVE",
            "AI-INF.2",
            [5000.0, 8000.0, 1.0],
            1774800001000,
            "4ed784765e6c",
        ),
        (
            "ENCLAVE_ALPHA",
            "AI-GRD.1",
            [2.0, 3.0, 0.0],
            1774800002000,
            "7f8629340cbd",
        ),
        (
            "AZURE_TRUSTED_EXEC",
            "AI-MDL.1",
            [1.0, 0.0, 1.0],
            1774800003000,
            "c36d477b3c2d",
        ),
        (
            "ACME_DEFENSE",
            "AI-FAIR.1",
            [15.0, 15.0, 0.0],
            1774800004000,
            "53180f5ae221",
        ),
        (
            "SAAS_TENANT_42",
            "AI-MDL.2",
            [1.0, 1.0, 0.0],
            1774800005000,
            "c7e61c16ee94",
        ),
        (
            "AWS_NITRO_ENCLAVE",
            "AI-EXPL.2",
            [85.0, 92.0, 0.0],
            1774800006000,
            "2f2b989bb5c6",
        ),
        (
            "ENCLAVE_ALPHA",
            "AI-HITL.1",
            [1.0, 1.0, 0.0],
            1774800007000,
            "9876e04b35ad",
        ),
        (
            "DEMO_ENCLAVE",
            "AI-INF.3",
            [10000.0, 9500.0, 0.0],
            1774800008000,
            "05010820e5a4",
        ),
        (
            "AZURE_TRUSTED_EXEC",
            "AI-DATA.1",
            [0.0, 0.0, 0.0],
            1774800009000,
            "289eb7452237",
        ),
        (
            "ENCLAVE_ALPHA",
            "AI-TOOL.1",
            [1.0, 42.0, 1.0],
            1774800010000,
            "8343d0f25ba0",
        ),
        (
            "ENCLAVE_ALPHA",
            "AI-ID.1",
            [1.0, 1.0, 0.0],
            1774800011000,
            "34fa3cf66f00",
        ),
        (
            "ACME_DEFENSE",
            "AI-GRD.3",
            [2.0, 0.0, 0.0],
            1774800012000,
            "62251b4cf593",
        ),
    ];
    for (tenant, procedure, factors, ts, expected) in published {
        let r = client
            .fingerprint(request(tenant, procedure, factors, ts, Some("agent-007")))
            .await
            .expect("Fingerprint")
            .into_inner();
        assert_eq!(
            r.fingerprint, expected,
            "published vector {tenant} {procedure}"
        );
        assert_eq!(r.timestamp_ms, ts);
        assert_eq!(
            r.signature,
            swt3_ai::sign_payload(SECRET, expected, Some("agent-007"))
        );
    }

    // Generated inputs, against the Python SDK (the crate writes ties and magnitudes below
    // 1e-4 differently: see ties_and_edges_match_swt3_ai_python below).
    let factors = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        1.5,
        0.1,
        0.3,
        -2.75,
        0.0001,
        1.5e-10,
        5e-324,
        2.2250738585072014e-308,
        42.0,
        1e15,
        9007199254740993.0,
        123456.789,
        -9.2e18,
        9.2e18,
    ];
    let tenants = ["ENCLAVE_ALPHA", "tënant-ü", "租户-42", "a b c", "emoji-🚀"];
    let agents = [None, Some("agent-007"), Some("wïtness-ß")];
    let inputs: Vec<Input> = (0..factors.len())
        .map(|i| {
            let a = factors[i];
            let b = factors[(i * 5 + 3) % factors.len()];
            let c = factors[(i * 11 + 7) % factors.len()];
            let ts = 1_774_800_000_000 + i as i64 * 997;
            (
                tenants[i % tenants.len()],
                "AI-INF.1",
                [a, b, c],
                ts,
                agents[i % agents.len()],
            )
        })
        .collect();
    let expected = python_sdk(&inputs);
    for ((tenant, procedure, f, ts, agent_id), (fp, sig)) in inputs.iter().zip(&expected) {
        let r = client
            .fingerprint(request(tenant, procedure, *f, *ts, *agent_id))
            .await
            .expect("Fingerprint")
            .into_inner();
        assert_eq!(&r.fingerprint, fp, "{tenant} {f:?} {ts}");
        assert_eq!(&r.signature, sig, "{agent_id:?}");
        let signed = match agent_id {
            Some(agent) => format!("{fp}:{agent}"),
            None => fp.clone(),
        };
        assert_eq!(r.signature, hmac_hex(signed.as_bytes()));
    }
}

/// HMAC-SHA256 with [`SECRET`] as its key bytes (as the SDK uses the key string), independently.
fn hmac_hex(message: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ties_and_edges_match_swt3_ai_python_and_disagreements_are_refused() {
    let token = TestToken::new();
    token.import_hmac("witness", SECRET);
    let agent = token.start_agent().await;
    let mut client = agent.client().await;

    let two = 2f64;
    // Exactly halfway between two shortest decimals: Python and JavaScript write the even one
    // (1.0000076293945312), Rust's `{}` and the swt3-ai crate the odd one (…313).
    let ties = [
        1.0 + two.powi(-17),
        1000.0 + two.powi(-14),
        1e12 + 1.0 / 32.0,
        -(1.0 + two.powi(-17)),
    ];
    let mut inputs: Vec<Input> = Vec::new();
    for (i, &tie) in ties.iter().enumerate() {
        let ts = 1_774_800_000_000 + i as i64;
        inputs.push((
            "ENCLAVE_ALPHA",
            "AI-INF.1",
            [tie, 1.0, 0.0],
            ts,
            Some("agent-007"),
        ));
        inputs.push(("T", "AI-MDL.2", [0.5, tie, tie], ts, None));
    }
    // Edges where both still write the same text: 1e-4 (plain), below 1e-9 (the same exponent
    // notation), 2^53 and round integers up to 2^63, negative zero.
    for f in [
        1e-4,
        -1e-4,
        9.5e-10,
        1e-300,
        two.powi(53),
        9.2e18,
        -0.0,
        1e16,
    ] {
        inputs.push(("T", "P", [f, 1.0, 1.0], 7, Some("a")));
    }
    let expected = python_sdk(&inputs);
    for ((tenant, procedure, f, ts, agent_id), (fp, sig)) in inputs.iter().zip(&expected) {
        let r = client
            .fingerprint(request(tenant, procedure, *f, *ts, *agent_id))
            .await
            .expect("Fingerprint")
            .into_inner();
        assert_eq!(&r.fingerprint, fp, "{f:?}");
        assert_eq!(&r.signature, sig, "{f:?}");
    }
    // The crate really does disagree on the first tie: the case this agent follows Python in.
    let (tenant, procedure, f, ts, _) = inputs[0];
    assert_ne!(
        swt3_ai::mint_fingerprint(tenant, procedure, f[0], f[1], f[2], ts),
        expected[0].0
    );

    // Python and JavaScript write these differently: refused, naming the field and both texts.
    for (f, field, python, javascript) in [
        ([1e-5, 1.0, 1.0], "factor_a", "1e-05", "0.00001"),
        ([1.0, -2.5e-7, 1.0], "factor_b", "-2.5e-07", "-2.5e-7"),
        (
            [1.0, 1.0, two.powi(60)],
            "factor_c",
            "1152921504606846976",
            "1152921504606847000",
        ),
    ] {
        let status = client
            .fingerprint(request("T", "P", f, 7, None))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{f:?}");
        let message = status.message();
        assert!(
            message.starts_with(&format!("{field}={python} ")),
            "{message}"
        );
        assert!(message.contains(&format!("as {javascript},")), "{message}");
    }
}
