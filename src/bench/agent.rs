//! The agent side of `signet bench`: many calls in flight over a unix socket or TCP, with
//! per-call latency, errors by code, a progress line each second, and a sample of the
//! signatures checked against the key's public key.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::TokioExecutor;

use hyper_util::rt::TokioIo;
use tonic::transport::Uri;

use super::Report;
use crate::error::Error;
use crate::grpc::proto::signer_client::SignerClient;
use crate::grpc::proto::{
    sign_batch_result, FingerprintRequest, GetPublicKeyRequest, SignBatchRequest, SignRequest,
    VerifyRequest,
};
use crate::grpc::status::code_name;
use crate::key::Algorithm;
use crate::public_key::PublicKey;

/// Where the agent listens.
#[derive(Debug, Clone)]
pub enum Target {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port` over plain TCP (loopback agents only serve public keys there).
    Tcp(String),
}

/// Which RPC to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    /// `Sign`.
    Sign,
    /// `Fingerprint` (an HMAC key).
    Fingerprint,
    /// `SignBatch` with `batch` items per call.
    SignBatch,
    /// `GetPublicKey`: no HSM call, so it measures the gRPC path alone.
    PublicKey,
    /// `Verify` of one signature made by `Sign` before the run (the bench client needs both
    /// grants). HMAC is checked in the HSM; asymmetric keys in the agent. A verdict that is not
    /// valid counts as an error.
    Verify,
}

/// One load run against an agent.
#[derive(Debug, Clone)]
pub struct Load {
    /// Where.
    pub target: Target,
    /// What.
    pub rpc: Rpc,
    /// With which key.
    pub key: String,
    /// Message size in bytes.
    pub size: usize,
    /// Connections (HTTP/2) to spread the calls over.
    pub connections: usize,
    /// Calls in flight at once, in all.
    pub in_flight: usize,
    /// Items per SignBatch call.
    pub batch: usize,
    /// Stop after this long…
    pub duration: Duration,
    /// …or after this many operations, whichever comes first.
    pub count: Option<u64>,
    /// Print a progress line to standard error each second.
    pub progress: bool,
}

/// One HTTP/2 connection used directly by the generated client. tonic's `Channel` would add a
/// buffer task (one more thread hand-off per call) on the load generator's side, whose CPU the
/// agent shares in a one-machine benchmark.
#[derive(Clone)]
struct Connection(SendRequest<tonic::body::Body>);

impl tower::Service<http::Request<tonic::body::Body>> for Connection {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}

async fn connect(target: &Target) -> Result<Connection, Error> {
    let failed = |e: std::io::Error| Error::Startup(format!("connecting to the agent: {e}"));
    let handshake = |e: hyper::Error| Error::Startup(format!("connecting to the agent: {e}"));
    let builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    let (sender, connection) = match target {
        Target::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(failed)?;
            let (sender, connection) = builder
                .handshake(TokioIo::new(stream))
                .await
                .map_err(handshake)?;
            (sender, tokio::spawn(connection))
        }
        Target::Tcp(address) => {
            let stream = tokio::net::TcpStream::connect(address)
                .await
                .map_err(failed)?;
            stream.set_nodelay(true).map_err(failed)?;
            let (sender, connection) = builder
                .handshake(TokioIo::new(stream))
                .await
                .map_err(handshake)?;
            (sender, tokio::spawn(connection))
        }
    };
    // The connection task ends when the last sender is dropped.
    drop(connection);
    Ok(Connection(sender))
}

fn client(connection: &Connection) -> SignerClient<Connection> {
    SignerClient::with_origin(
        connection.clone(),
        Uri::from_static("http://signet.invalid"),
    )
    .max_decoding_message_size(64 << 20)
}

/// Runs the load and reports what it measured.
pub async fn run(load: &Load) -> Result<Report, Error> {
    let mut channels = Vec::new();
    for _ in 0..load.connections.max(1) {
        channels.push(connect(&load.target).await?);
    }
    // The public key, to check a sample of the signatures independently of the agent's own
    // verify-after-sign.
    let public_key = match load.rpc {
        Rpc::Fingerprint => None,
        _ => client(&channels[0])
            .get_public_key(GetPublicKeyRequest {
                key_id: load.key.clone(),
                key_version: None,
            })
            .await
            .ok()
            .and_then(|r| {
                let r = r.into_inner();
                let algorithm = match r.algorithm {
                    1 => Algorithm::Ed25519,
                    2 => Algorithm::EcdsaP256Sha256,
                    4 => return PublicKey::from_ml_dsa_65(&r.raw).ok(),
                    _ => return None,
                };
                PublicKey::from_ec_point(algorithm, &r.raw).ok()
            }),
    };
    let public_key = Arc::new(public_key);
    let message = vec![0x5au8; load.size];
    let signature = match load.rpc {
        Rpc::Verify => {
            client(&channels[0])
                .sign(SignRequest {
                    key_id: load.key.clone(),
                    message: message.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|s| {
                    Error::Startup(format!(
                        "--rpc verify signs the message once first, and Sign failed ({}: {}); the \
                     bench client needs the sign and verify grants",
                        code_name(s.code()),
                        s.message()
                    ))
                })?
                .into_inner()
                .signature
        }
        _ => Vec::new(),
    };
    let signature = Arc::new(signature);
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + load.duration;
    let progress = load.progress.then(|| {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = done.load(Ordering::Relaxed);
                eprintln!("  … {now} ops, {} ops/s in the last second", now - last);
                last = now;
            }
        })
    });
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..load.in_flight.max(1) {
        let mut client = client(&channels[worker % channels.len()]);
        let (load, done, public_key) = (load.clone(), Arc::clone(&done), Arc::clone(&public_key));
        let (message, signature) = (message.clone(), Arc::clone(&signature));
        tasks.spawn(async move {
            let mut report = Report::default();
            for call in 0u64.. {
                let issued = done.load(Ordering::Relaxed);
                if Instant::now() >= until || load.count.is_some_and(|n| issued >= n) {
                    break;
                }
                let begun = Instant::now();
                let outcome: Result<u64, tonic::Status> = match load.rpc {
                    Rpc::Sign => client
                        .sign(SignRequest {
                            key_id: load.key.clone(),
                            message: message.clone(),
                            ..Default::default()
                        })
                        .await
                        .map(|r| {
                            let signature = r.into_inner().signature;
                            if call % 97 == 0 {
                                if let Some(pk) = public_key.as_ref() {
                                    report.verified.0 += 1;
                                    if !pk.verify(&message, &signature) {
                                        report.verified.1 += 1;
                                    }
                                }
                            }
                            1
                        }),
                    Rpc::Fingerprint => client
                        .fingerprint(FingerprintRequest {
                            key_id: load.key.clone(),
                            tenant_id: "BENCH".into(),
                            procedure_id: "AI-INF.1".into(),
                            factor_a: call as f64,
                            factor_b: worker as f64,
                            factor_c: 0.0,
                            timestamp_ms: 1,
                            agent_id: None,
                        })
                        .await
                        .map(|_| 1),
                    Rpc::PublicKey => client
                        .get_public_key(GetPublicKeyRequest {
                            key_id: load.key.clone(),
                            key_version: None,
                        })
                        .await
                        .map(|_| 1),
                    Rpc::Verify => client
                        .verify(VerifyRequest {
                            key_id: load.key.clone(),
                            message: message.clone(),
                            signature: signature.to_vec(),
                            ..Default::default()
                        })
                        .await
                        .and_then(|r| {
                            if r.into_inner().valid {
                                Ok(1)
                            } else {
                                Err(tonic::Status::data_loss("a valid signature did not verify"))
                            }
                        }),
                    Rpc::SignBatch => {
                        let items = (0..load.batch.max(1))
                            .map(|_| SignRequest {
                                key_id: load.key.clone(),
                                message: message.clone(),
                                ..Default::default()
                            })
                            .collect();
                        client
                            .sign_batch(SignBatchRequest { items })
                            .await
                            .map(|r| {
                                let mut ok = 0;
                                for result in r.into_inner().results {
                                    match result.result {
                                        Some(sign_batch_result::Result::Signature(s)) => {
                                            ok += 1;
                                            if call % 97 == 0 && ok == 1 {
                                                if let Some(pk) = public_key.as_ref() {
                                                    report.verified.0 += 1;
                                                    if !pk.verify(&message, &s.signature) {
                                                        report.verified.1 += 1;
                                                    }
                                                }
                                            }
                                        }
                                        Some(sign_batch_result::Result::Error(e)) => {
                                            let code = tonic::Code::from_i32(e.code);
                                            *report
                                                .errors
                                                .entry(code_name(code).to_owned())
                                                .or_default() += 1;
                                        }
                                        None => {}
                                    }
                                }
                                ok
                            })
                    }
                };
                report
                    .latencies_us
                    .push(begun.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                match outcome {
                    Ok(ok) => {
                        report.ok += ok;
                        done.fetch_add(ok, Ordering::Relaxed);
                    }
                    Err(status) => {
                        *report
                            .errors
                            .entry(code_name(status.code()).to_owned())
                            .or_default() += 1;
                    }
                }
            }
            report
        });
    }
    let mut total = Report::default();
    while let Some(part) = tasks.join_next().await {
        let part = part.map_err(|e| Error::Internal(format!("a load task failed: {e}")))?;
        total.ok += part.ok;
        total.latencies_us.extend(part.latencies_us);
        total.verified.0 += part.verified.0;
        total.verified.1 += part.verified.1;
        for (code, n) in part.errors {
            *total.errors.entry(code).or_default() += n;
        }
    }
    total.elapsed = started.elapsed();
    if let Some(progress) = progress {
        progress.abort();
    }
    total.label = format!(
        "agent {:?} {} {}-byte, {} in flight over {} connection(s){}",
        load.rpc,
        load.key,
        load.size,
        load.in_flight,
        load.connections,
        if load.rpc == Rpc::SignBatch {
            format!(", {} per batch", load.batch)
        } else {
            String::new()
        }
    );
    Ok(total)
}
