//! A short smoke run of `signet bench` against a real agent and the raw module: the tool
//! works and reports no errors. (Benchmarks measure; tests never assert a time.)

mod common;

use common::{path_str, TestToken};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_tool_runs_every_mode_without_errors() {
    let token = TestToken::new().with_verifiable_keys();
    let agent = token.start_agent().await;
    let socket = path_str(&agent.socket).to_owned();
    let config = path_str(&token.config).to_owned();
    let (first, second) = (format!("first={socket}"), format!("second={socket}"));
    let runs: [&[&str]; 9] = [
        &[
            "bench",
            "agent",
            "--socket",
            &socket,
            "--key",
            "ed",
            "--duration",
            "0.3",
        ],
        &[
            "bench",
            "agent",
            "--socket",
            &socket,
            "--key",
            "ec",
            "--rpc",
            "sign-batch",
            "--batch",
            "4",
            "--duration",
            "0.3",
        ],
        &[
            "bench",
            "agent",
            "--socket",
            &socket,
            "--key",
            "ec",
            "--rpc",
            "public-key",
            "--duration",
            "0.2",
        ],
        &[
            "bench",
            "raw",
            "--config",
            &config,
            "--key",
            "hmac",
            "--duration",
            "0.3",
        ],
        &[
            "bench",
            "compare",
            "--config",
            &config,
            "--socket",
            &socket,
            "--key",
            "ed",
            "--duration",
            "0.2",
            "--rounds",
            "1",
        ],
        // Several labelled agents (here the same one twice) alternated in one run.
        &[
            "bench",
            "compare",
            "--config",
            &config,
            "--agent",
            &first,
            "--agent",
            &second,
            "--key",
            "hmac",
            "--rpc",
            "fingerprint",
            "--duration",
            "0.2",
            "--rounds",
            "1",
        ],
        // Verify: HMAC in the HSM, Ed25519 in the agent; and the raw module's C_Verify.
        &[
            "bench",
            "agent",
            "--socket",
            &socket,
            "--key",
            "hmac",
            "--rpc",
            "verify",
            "--duration",
            "0.2",
        ],
        &[
            "bench",
            "raw",
            "--config",
            &config,
            "--key",
            "hmac",
            "--verify",
            "--duration",
            "0.2",
        ],
        &[
            "bench",
            "compare",
            "--config",
            &config,
            "--socket",
            &socket,
            "--key",
            "ed",
            "--rpc",
            "verify",
            "--duration",
            "0.2",
            "--rounds",
            "1",
        ],
    ];
    for args in runs {
        let out = token.command().args(args).output().expect("signet bench");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("errors: none"), "{args:?}: {stdout}");
        assert!(stdout.contains(" 0 bad"), "{args:?}: {stdout}");
        if args.contains(&"--agent") {
            assert!(
                stdout.contains("median ratio second/raw") && stdout.contains("second/first"),
                "each labelled agent gets its ratios: {stdout}"
            );
        }
    }
    let (status, log) = tokio::task::spawn_blocking(move || agent.stop())
        .await
        .expect("stop");
    assert!(status.success(), "{log}");
}
