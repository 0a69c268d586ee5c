//! Fingerprint through the real agent against the `swt3-ai` crate: its published vectors and
//! many generated inputs, byte for byte, with an HMAC key imported as the SDK's key string.

mod common;

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

    let factors = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        1.5,
        0.1,
        0.3,
        -2.75,
        1e-7,
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
    let mut checked = 0;
    for (i, &a) in factors.iter().enumerate() {
        let b = factors[(i * 5 + 3) % factors.len()];
        let c = factors[(i * 11 + 7) % factors.len()];
        let tenant = tenants[i % tenants.len()];
        let agent_id = agents[i % agents.len()];
        let ts = 1_774_800_000_000 + i as i64 * 997;
        let r = client
            .fingerprint(request(tenant, "AI-INF.1", [a, b, c], ts, agent_id))
            .await
            .expect("Fingerprint")
            .into_inner();
        let fp = swt3_ai::mint_fingerprint(tenant, "AI-INF.1", a, b, c, ts);
        assert_eq!(r.fingerprint, fp, "{tenant} {a} {b} {c} {ts}");
        assert_eq!(
            r.signature,
            swt3_ai::sign_payload(SECRET, &fp, agent_id),
            "{agent_id:?}"
        );
        assert_eq!(r.signature.len(), 64);
        assert!(r
            .signature
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        checked += 1;
    }
    assert_eq!(checked, factors.len());
}
