//! The TLS listener with required client certificates, through the real binary on a real
//! SoftHSM2 token, with certificates made in the test (rcgen): a client with a valid
//! certificate signs; no certificate, a certificate from another CA, and an allowed certificate
//! asking for a key it may not use each get the right answer; `signet sign` over TLS too.

mod common;

use common::ca::Ca;
use common::ports::free_port;
use common::requests::sign_request;
use common::TestToken;
use signet::grpc::proto::signer_client::SignerClient;
use signet::grpc::proto::SignRequest;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

async fn connect(
    port: u16,
    ca: &str,
    client: Option<&(String, String)>,
) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = client {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .expect("uri")
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))
}

fn sign(key_id: &str) -> SignRequest {
    sign_request(key_id, b"over mutual TLS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_identify_callers_and_unverified_ones_are_refused() {
    let ca = Ca::new("signet test CA");
    let stranger_ca = Ca::new("another CA");
    let (server_cert, server_key) = ca.issue("signet", &["localhost", "127.0.0.1"]);
    let witness = ca.issue("witness-1", &["witness-1.example"]);
    let unknown = ca.issue("nobody", &[]);
    let forged = stranger_ca.issue("witness-1", &[]);

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
    let ca_pem = ca.cert.pem();

    // A valid certificate whose CN is a configured client: signs, and it verifies.
    let channel = connect(port, &ca_pem, Some(&witness))
        .await
        .expect("mutual TLS");
    let mut client = SignerClient::new(channel);
    let signature = client
        .sign(sign("ed"))
        .await
        .expect("granted")
        .into_inner()
        .signature;
    let verifier = common::Verifier::fetch(agent.channel().await).await;
    assert!(verifier.verify("ed", b"over mutual TLS", &signature));
    // The same client asking for a key it may not use.
    let status = client.sign(sign("ec")).await.expect_err("not granted");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("client 'witness' may not sign"),
        "{status:?}"
    );

    // A valid certificate that names no configured client.
    let channel = connect(port, &ca_pem, Some(&unknown))
        .await
        .expect("mutual TLS");
    let status = SignerClient::new(channel)
        .sign(sign("ed"))
        .await
        .expect_err("stranger");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("cert CN=nobody"), "{status:?}");

    // No certificate, or one from another CA: the handshake fails, nothing is signed.
    for (what, identity) in [("no certificate", None), ("another CA", Some(&forged))] {
        let refused = match connect(port, &ca_pem, identity).await {
            Err(e) => e,
            Ok(channel) => match SignerClient::new(channel).sign(sign("ed")).await {
                Ok(_) => panic!("{what}: signed"),
                // With TLS 1.3 the client finishes its side of the handshake first; the
                // agent's refusal then closes the connection before any call is read.
                Err(status) => {
                    assert!(
                        matches!(
                            status.code(),
                            tonic::Code::Unavailable
                                | tonic::Code::Cancelled
                                | tonic::Code::Unknown
                        ),
                        "{what}: {status:?}"
                    );
                    assert!(
                        std::error::Error::source(&status).is_some(),
                        "{what}: a transport failure, not an answer from the agent: {status:?}"
                    );
                    format!("{status:?}")
                }
            },
        };
        assert!(!refused.is_empty(), "{what}");
    }
    // The command-line client over the same TLS listener, with the witness's certificate.
    std::fs::write(dir.join("witness.pem"), &witness.0).expect("write");
    std::fs::write(dir.join("witness.key"), &witness.1).expect("write");
    let address = format!("127.0.0.1:{port}");
    let cli = |key: &str| {
        token.signet_with_stdin(
            &[
                "sign",
                "--key",
                key,
                "--address",
                &address,
                "--tls-ca",
                "ca.pem",
                "--tls-cert",
                "witness.pem",
                "--tls-key",
                "witness.key",
                "--tls-server-name",
                "localhost",
                "--output",
                "hex",
            ],
            b"over mutual TLS",
        )
    };
    let out = cli("ed");
    common::assert_success(&out, "signet sign over TLS");
    let signature = hex::decode(String::from_utf8_lossy(&out.stdout).trim()).expect("hex");
    assert!(verifier.verify("ed", b"over mutual TLS", &signature));
    let out = cli("ec");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signet: PERMISSION_DENIED: "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (status, log) = tokio::task::spawn_blocking(move || agent.stop())
        .await
        .expect("stop");
    assert!(status.success(), "{log}");
    assert!(!log.contains("PRIVATE KEY"), "the TLS key is never logged");
}
