//! The `signet.v1.Signer` service: validates and converts each request at the edge, calls the
//! tonic-free [`crate::signer::Signer`], and converts the answer back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};

use sha2::{Digest, Sha256};

use super::proto::{self, signer_server};
use super::stamps::{Arrival, Peer};
use super::status::{code_name, code_of};
use crate::audit::{AuditLog, Record};
use crate::config::{Limits, Operation};
use crate::error::Error;
use crate::identity::{Caller, Identity};
use crate::key::{Algorithm, SignatureFormat};
use crate::metrics::{Metrics, OTHER_KEY};
use crate::policy::Policy;
use crate::signer::check_key_id;
use crate::signer::Signer;
use crate::swt3::Anchor;

/// The most a client deadline is brought forward (see [`SignerService::deadline`]).
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// Who may call, and the record of what they did.
#[derive(Clone)]
pub struct Access {
    /// The configured clients and grants.
    pub policy: Arc<Policy>,
    /// The audit log, when configured.
    pub audit: Option<Arc<AuditLog>>,
    /// Where requests, latencies and failures are counted.
    pub metrics: Arc<Metrics>,
}

/// The gRPC face of a [`Signer`].
#[derive(Clone)]
pub struct SignerService {
    signer: Arc<Signer>,
    access: Access,
    /// The deadline of calls whose client set none.
    default_timeout: Duration,
    /// The most items a batch may carry.
    max_batch_items: usize,
}

/// What a handler knows about a call before it reads the body.
struct Call {
    caller: Caller,
    arrived: Instant,
}

impl Call {
    /// The caller's identity (unix peer credentials, a verified client certificate, or none)
    /// and the listener, which the server put in the request when it accepted the connection.
    fn of<T>(request: &Request<T>) -> Self {
        let (identity, listener) = request
            .extensions()
            .get::<Peer>()
            .map_or((Identity::Anonymous, String::new()), |peer| {
                (peer.identity.clone(), peer.listener.to_string())
            });
        let arrived = request
            .extensions()
            .get::<Arrival>()
            .map_or_else(Instant::now, |a| a.0);
        Call {
            caller: Caller { identity, listener },
            arrived,
        }
    }
}

/// The key label of calls that name no single key (ListKeys, a batch failing as a whole).
const NO_KEY: &str = "-";

/// How a call is counted in the metrics.
#[derive(Clone, Copy)]
enum Counted<'a> {
    /// A call for one key.
    Key(&'a str),
    /// A call for no key (ListKeys).
    NoKey,
    /// A batch: its items are counted one by one; the call itself only if it fails as a whole.
    Items,
}

/// A call being watched for the metrics and the log; see [`SignerService::observed`].
struct Observation<'a> {
    service: &'a SignerService,
    call: &'a Call,
    rpc: &'static str,
    counted: Counted<'a>,
    finished: bool,
}

impl Observation<'_> {
    /// Records the call's outcome.
    fn finish<T>(mut self, result: &Result<T, Status>) {
        self.finished = true;
        let code = match result {
            Ok(_) => "OK",
            Err(status) => code_name(status.code()),
        };
        self.service
            .observe(self.call, self.rpc, self.counted, code);
    }
}

impl Drop for Observation<'_> {
    /// A call dropped before it finished: the client cancelled it or went away.
    fn drop(&mut self) {
        if !self.finished {
            self.service
                .observe(self.call, self.rpc, self.counted, "CANCELLED");
        }
    }
}

/// What an audited call produced, for its record.
struct Done {
    algorithm: Option<Algorithm>,
    message_sha256: Option<String>,
}

impl SignerService {
    /// Serves `signer` under `access`, within `limits` (the default deadline, the batch size).
    pub fn new(signer: Arc<Signer>, access: Access, limits: &Limits) -> Self {
        SignerService {
            signer,
            access,
            default_timeout: Duration::from_millis(limits.request_timeout_ms),
            max_batch_items: limits.max_batch_items,
        }
    }

    /// Checks the grant, runs `work`, and writes the audit record (allowed, denied or failed)
    /// before the answer leaves. A record that cannot be written fails the call (fail closed).
    async fn audited<T>(
        &self,
        call: &Call,
        operation: Operation,
        rpc: &'static str,
        key_id: &str,
        work: impl std::future::Future<Output = Result<(T, Done), Error>>,
    ) -> Result<T, Status> {
        let identity = &call.caller.identity;
        // Malformed key ids are refused before anything is recorded, so records stay small.
        check_key_id(key_id)?;
        let client = match self.access.policy.authorize(identity, operation, key_id) {
            Ok(client) => client,
            Err(denied) => {
                tracing::warn!(caller = %identity, rpc, key = %key_id.escape_debug(), "denied: {denied}");
                let mut record = self.record_of(call, rpc, key_id);
                record.client = self.access.policy.client_of(identity);
                (record.outcome, record.code) = ("denied", code_name(code_of(denied.kind())));
                if let Err(e) = self.write(record.with_latency(call.arrived), true).await {
                    tracing::error!(error = %e, "the denial could not be audited");
                }
                return Err(denied.into());
            }
        };
        let mut record = self.record_of(call, rpc, key_id);
        record.client = client;
        let result = match work.await {
            Ok((value, done)) => {
                record.algorithm = done.algorithm.map(Algorithm::name);
                record.message_sha256 = done.message_sha256;
                (record.outcome, record.code) = ("allowed", "OK");
                Ok(value)
            }
            Err(e) => {
                self.note_failure(&e);
                (record.outcome, record.code) = ("failed", code_name(code_of(e.kind())));
                Err(e)
            }
        };
        self.write(record.with_latency(call.arrived), false).await?;
        Ok(result?)
    }

    /// Runs an RPC's handler under watch, given the call the request makes: its count,
    /// latency and log line are recorded when it finishes, or as `CANCELLED` if the client
    /// goes away first (the future is dropped).
    async fn observed<'s, T, R>(
        &'s self,
        rpc: &'static str,
        counted: Counted<'_>,
        request: Request<T>,
        handler: impl AsyncFnOnce(&'s Self, &Call, Request<T>) -> Result<R, Status>,
    ) -> Result<R, Status> {
        let call = Call::of(&request);
        let observation = Observation {
            service: self,
            call: &call,
            rpc,
            counted,
            finished: false,
        };
        let result = handler(self, &call, request).await;
        observation.finish(&result);
        result
    }

    /// Counts a finished call and logs one line for it at info: the RPC, who called (and as
    /// which client), the key, the gRPC code and the latency; never the message. A batch's
    /// items are counted one by one once the batch is answered ([`Self::settle_batch`]); the
    /// batch call itself is counted only when it fails as a whole.
    fn observe(&self, call: &Call, rpc: &'static str, counted: Counted<'_>, code: &'static str) {
        let took = call.arrived.elapsed();
        let metrics = &self.access.metrics;
        let key = match counted {
            Counted::Key(key_id) => self.key_label(key_id),
            Counted::NoKey | Counted::Items => NO_KEY,
        };
        if !matches!(counted, Counted::Items) || code != "OK" {
            metrics.request(rpc, key, code);
        }
        metrics.latency(rpc, took);
        let client = self.access.policy.client_of(&call.caller.identity);
        tracing::info!(
            rpc,
            caller = %call.caller.identity,
            client = client.as_deref().unwrap_or("-"),
            key,
            code,
            latency_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            "request"
        );
    }

    /// Audits the records of an answered batch ([`Self::write_all`]) and, once they are
    /// written, counts each item with its key and code.
    async fn settle_batch(&self, call: &Call, records: Vec<Record>) -> Result<(), Error> {
        let counted: Vec<(&'static str, String, &'static str)> = records
            .iter()
            .map(|r| (r.rpc, r.key_id.clone(), r.code))
            .collect();
        self.write_all(call, records).await?;
        for (rpc, key_id, code) in &counted {
            self.access
                .metrics
                .request(rpc, self.key_label(key_id), code);
        }
        Ok(())
    }

    /// A served key id, or [`OTHER_KEY`]: callers cannot add labels to the metrics.
    fn key_label<'a>(&self, key_id: &'a str) -> &'a str {
        if self.signer.serves(key_id) {
            key_id
        } else {
            OTHER_KEY
        }
    }

    /// Counts a signature withheld by verify-after-sign.
    fn note_failure(&self, error: &Error) {
        if let Error::SignatureCheckFailed { key_id } = error {
            self.access.metrics.verify_failed(self.key_label(key_id));
        }
    }

    /// A record of this call with what is known before the decision.
    fn record_of(&self, call: &Call, rpc: &'static str, key_id: &str) -> Record {
        Record {
            client: None,
            identity: call.caller.identity.to_string(),
            listener: call.caller.listener.clone(),
            rpc,
            key_id: key_id.to_owned(),
            algorithm: None,
            message_sha256: None,
            outcome: "failed",
            code: "UNKNOWN",
            latency_us: 0,
            suppressed_denials: None,
        }
    }

    /// Writes a record on a blocking thread (it may wait for an fsync), so the async workers
    /// keep serving and concurrent calls share fsyncs (group commit).
    async fn write(&self, record: Record, denial: bool) -> Result<(), Error> {
        let Some(audit) = self.access.audit.clone() else {
            return Ok(());
        };
        self.on_writer(move || {
            if denial {
                audit.record_denial(&record)
            } else {
                audit.record(&record)
            }
        })
        .await
    }

    /// Runs an audit `write` on a blocking thread and counts its failure.
    async fn on_writer(
        &self,
        write: impl FnOnce() -> Result<(), Error> + Send + 'static,
    ) -> Result<(), Error> {
        let written = tokio::task::spawn_blocking(write)
            .await
            .map_err(|e| Error::AuditUnavailable(format!("the audit writer task failed: {e}")))
            .and_then(|written| written);
        if written.is_err() {
            self.access.metrics.audit_failed();
        }
        written
    }

    /// Refuses a batch with more items than allowed.
    fn check_batch(&self, items: usize) -> Result<(), Status> {
        if items > self.max_batch_items {
            return Err(Error::ResourceExhausted(format!(
                "the batch has {items} items; at most {} are allowed",
                self.max_batch_items
            ))
            .into());
        }
        Ok(())
    }

    /// The policy check of one batch item: its record so far (client, or a denial) and
    /// whether it may go on.
    fn admit(
        &self,
        call: &Call,
        operation: Operation,
        rpc: &'static str,
        key_id: &str,
    ) -> (Record, Result<(), Error>) {
        let mut record = self.record_of(call, rpc, key_id);
        if let Err(e) = check_key_id(key_id) {
            record.key_id = String::new();
            (record.outcome, record.code) = ("failed", code_name(code_of(e.kind())));
            return (record, Err(e));
        }
        match self
            .access
            .policy
            .authorize(&call.caller.identity, operation, key_id)
        {
            Ok(client) => {
                record.client = client;
                (record, Ok(()))
            }
            Err(denied) => {
                record.client = self.access.policy.client_of(&call.caller.identity);
                (record.outcome, record.code) = ("denied", code_name(code_of(denied.kind())));
                (record, Err(denied))
            }
        }
    }

    /// Writes the records of a batch with one sync (denials within their budget) before the
    /// answer leaves.
    async fn write_all(&self, call: &Call, records: Vec<Record>) -> Result<(), Error> {
        let Some(audit) = self.access.audit.clone() else {
            return Ok(());
        };
        let records: Vec<Record> = records
            .into_iter()
            .map(|r| r.with_latency(call.arrived))
            .filter_map(|mut r| (r.outcome != "denied" || audit.admit_denial(&mut r)).then_some(r))
            .collect();
        self.on_writer(move || audit.record_all(&records)).await
    }

    /// Whether `operation` with `key_id` is allowed (for the calls that are not audited).
    fn allow(&self, call: &Call, operation: Operation, key_id: &str) -> Result<(), Status> {
        self.access
            .policy
            .authorize(&call.caller.identity, operation, key_id)
            .map(drop)
            .map_err(Status::from)
    }

    /// The call's deadline: the client's `grpc-timeout`, capped at the default timeout, so no
    /// call waits longer than the agent allows.
    ///
    /// Measured from the request's [`Arrival`], before its body was read. A client deadline is
    /// brought forward by a small margin: tonic's server enforces the same header around this
    /// service and answers `CANCELLED` when it fires, so the agent must give its precise
    /// `DEADLINE_EXCEEDED` first.
    fn deadline<T>(&self, request: &Request<T>) -> Result<Instant, Error> {
        let arrived = request
            .extensions()
            .get::<Arrival>()
            .map_or_else(Instant::now, |a| a.0);
        let timeout = match request.metadata().get("grpc-timeout") {
            None => self.default_timeout,
            Some(value) => {
                let timeout = value
                    .to_str()
                    .ok()
                    .and_then(parse_grpc_timeout)
                    .ok_or_else(|| {
                        Error::InvalidArgument("the grpc-timeout header is malformed".into())
                    })?;
                let margin = (timeout / 10).min(DEADLINE_MARGIN);
                (timeout - margin).min(self.default_timeout)
            }
        };
        Ok(arrived + timeout)
    }
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n), as the gRPC
/// over HTTP/2 protocol defines it.
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn algorithm(a: Algorithm) -> proto::Algorithm {
    match a {
        Algorithm::Ed25519 => proto::Algorithm::Ed25519,
        Algorithm::EcdsaP256Sha256 => proto::Algorithm::EcdsaP256Sha256,
        Algorithm::HmacSha256 => proto::Algorithm::HmacSha256,
    }
}

/// Refuses a message whose CRC32C is not the `expected` one the client sent, if it sent one.
fn check_crc32c(message: &[u8], expected: Option<u32>) -> Result<(), Error> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let received = crc32c::crc32c(message);
    if received != expected {
        return Err(Error::ChecksumMismatch { expected, received });
    }
    Ok(())
}

/// Marks a batch item's record failed with `error`'s code, unless the policy denied it.
fn failed_unless_denied(record: &mut Record, error: &Error) {
    if record.outcome != "denied" {
        (record.outcome, record.code) = ("failed", code_name(code_of(error.kind())));
    }
}

/// One batch item's failure, exactly as the unary call would answer it.
fn item_error(error: Error) -> proto::ItemError {
    let status = Status::from(error);
    proto::ItemError {
        code: status.code() as i32,
        message: status.message().to_owned(),
    }
}

/// The response for a signature.
fn sign_response(
    key_id: String,
    signature: crate::signer::Signature,
    message_crc32c: Option<u32>,
) -> proto::SignResponse {
    proto::SignResponse {
        signature_crc32c: crc32c::crc32c(&signature.bytes),
        verified_message_crc32c: message_crc32c.is_some(),
        signature: signature.bytes,
        key_id,
        algorithm: algorithm(signature.algorithm).into(),
        signature_format: match signature.format {
            SignatureFormat::Raw => proto::SignatureFormat::Raw,
            SignatureFormat::Der => proto::SignatureFormat::Der,
        }
        .into(),
    }
}

/// The response for a fingerprint.
fn fingerprint_response(
    witness: crate::signer::Witness,
    key_id: String,
) -> proto::FingerprintResponse {
    proto::FingerprintResponse {
        fingerprint: witness.fingerprint,
        signature: witness.signature,
        timestamp_ms: witness.timestamp_ms,
        key_id,
    }
}

fn signature_format(value: Option<i32>) -> Result<SignatureFormat, Error> {
    let Some(value) = value else {
        return Ok(SignatureFormat::Raw);
    };
    match proto::SignatureFormat::try_from(value) {
        Ok(proto::SignatureFormat::Raw) => Ok(SignatureFormat::Raw),
        Ok(proto::SignatureFormat::Der) => Ok(SignatureFormat::Der),
        Ok(proto::SignatureFormat::Unspecified) => Err(Error::InvalidArgument(
            "signature_format is SIGNATURE_FORMAT_UNSPECIFIED: set RAW or DER, or leave the \
             field out for RAW"
                .into(),
        )),
        Err(_) => Err(Error::InvalidArgument(format!(
            "signature_format {value} is not a known SignatureFormat"
        ))),
    }
}

/// The handlers, each given the call its wrapper in [`signer_server::Signer`] observes.
impl SignerService {
    async fn sign_call(
        &self,
        call: &Call,
        request: Request<proto::SignRequest>,
    ) -> Result<Response<proto::SignResponse>, Status> {
        let deadline = self.deadline(&request)?;
        let proto::SignRequest {
            key_id,
            message,
            signature_format: format,
            message_crc32c,
        } = request.into_inner();
        let audited = self.access.audit.is_some();
        let work = async {
            let format = signature_format(format)?;
            check_crc32c(&message, message_crc32c)?;
            let message_sha256 = audited.then(|| hex::encode(Sha256::digest(&message)));
            let signature = self.signer.sign(&key_id, message, format, deadline).await?;
            let done = Done {
                algorithm: Some(signature.algorithm),
                message_sha256,
            };
            Ok((signature, done))
        };
        let signature = self
            .audited(call, Operation::Sign, "Sign", &key_id, work)
            .await?;
        Ok(Response::new(sign_response(
            key_id,
            signature,
            message_crc32c,
        )))
    }

    async fn get_public_key_call(
        &self,
        call: &Call,
        request: Request<proto::GetPublicKeyRequest>,
    ) -> Result<Response<proto::GetPublicKeyResponse>, Status> {
        let key_id = request.into_inner().key_id;
        self.allow(call, Operation::PublicKey, &key_id)?;
        let (key, public_key) = self.signer.public_key(&key_id)?;
        Ok(Response::new(proto::GetPublicKeyResponse {
            algorithm: algorithm(key.algorithm).into(),
            raw: public_key.raw(),
            spki_der: public_key.spki_der()?,
            pem: public_key.pem()?,
            jwk: public_key.jwk(&key_id),
            jwk_thumbprint: public_key.jwk_thumbprint(),
            key_id,
        }))
    }

    async fn fingerprint_call(
        &self,
        call: &Call,
        request: Request<proto::FingerprintRequest>,
    ) -> Result<Response<proto::FingerprintResponse>, Status> {
        let deadline = self.deadline(&request)?;
        let r = request.into_inner();
        let work = async {
            let anchor = Anchor::new(
                &r.tenant_id,
                &r.procedure_id,
                [r.factor_a, r.factor_b, r.factor_c],
                r.timestamp_ms,
                r.agent_id.as_deref(),
            )?;
            let payload_sha256 = |fingerprint: &str| {
                hex::encode(Sha256::digest(
                    anchor.signed_payload(fingerprint).as_bytes(),
                ))
            };
            let witness = self
                .signer
                .fingerprint(&r.key_id, anchor.clone(), deadline)
                .await?;
            let done = Done {
                algorithm: Some(Algorithm::HmacSha256),
                message_sha256: Some(payload_sha256(&witness.fingerprint)),
            };
            Ok((witness, done))
        };
        let witness = self
            .audited(call, Operation::Fingerprint, "Fingerprint", &r.key_id, work)
            .await?;
        Ok(Response::new(fingerprint_response(witness, r.key_id)))
    }

    async fn sign_batch_call(
        &self,
        call: &Call,
        request: Request<proto::SignBatchRequest>,
    ) -> Result<Response<proto::SignBatchResponse>, Status> {
        let deadline = self.deadline(&request)?;
        let items = request.into_inner().items;
        self.check_batch(items.len())?;
        let mut records = Vec::with_capacity(items.len());
        // Per item: the error found before signing, or the CRC32C it came with.
        let mut early: Vec<Result<Option<u32>, Error>> = Vec::with_capacity(items.len());
        let mut work = Vec::new();
        for item in items {
            let (mut record, admitted) =
                self.admit(call, Operation::Sign, "SignBatch", &item.key_id);
            let checked = admitted.and_then(|()| {
                let format = signature_format(item.signature_format)?;
                check_crc32c(&item.message, item.message_crc32c)?;
                Ok(format)
            });
            match checked {
                Ok(format) => {
                    if self.access.audit.is_some() {
                        record.message_sha256 = Some(hex::encode(Sha256::digest(&item.message)));
                    }
                    work.push((item.key_id, item.message, format));
                    early.push(Ok(item.message_crc32c));
                }
                Err(e) => {
                    failed_unless_denied(&mut record, &e);
                    early.push(Err(e));
                }
            }
            records.push(record);
        }
        let mut signed = self.signer.sign_batch(work, deadline).await.into_iter();
        let mut results = Vec::with_capacity(records.len());
        for (record, early) in records.iter_mut().zip(early) {
            let (outcome, message_crc32c) = match early {
                Err(e) => (Err(e), None),
                Ok(crc) => (
                    signed.next().unwrap_or_else(|| {
                        Err(Error::Internal("a batch item got no result".into()))
                    }),
                    crc,
                ),
            };
            let result = match outcome {
                Ok(signature) => {
                    record.algorithm = Some(signature.algorithm.name());
                    (record.outcome, record.code) = ("allowed", "OK");
                    proto::sign_batch_result::Result::Signature(sign_response(
                        record.key_id.clone(),
                        signature,
                        message_crc32c,
                    ))
                }
                Err(e) => {
                    self.note_failure(&e);
                    failed_unless_denied(record, &e);
                    proto::sign_batch_result::Result::Error(item_error(e))
                }
            };
            results.push(proto::SignBatchResult {
                result: Some(result),
            });
        }
        self.settle_batch(call, records).await?;
        Ok(Response::new(proto::SignBatchResponse { results }))
    }

    async fn fingerprint_batch_call(
        &self,
        call: &Call,
        request: Request<proto::FingerprintBatchRequest>,
    ) -> Result<Response<proto::FingerprintBatchResponse>, Status> {
        let deadline = self.deadline(&request)?;
        let items = request.into_inner().items;
        self.check_batch(items.len())?;
        let mut records = Vec::with_capacity(items.len());
        let mut work = Vec::with_capacity(items.len());
        for item in &items {
            let (record, admitted) = self.admit(
                call,
                Operation::Fingerprint,
                "FingerprintBatch",
                &item.key_id,
            );
            let anchor = admitted.and_then(|()| {
                Anchor::new(
                    &item.tenant_id,
                    &item.procedure_id,
                    [item.factor_a, item.factor_b, item.factor_c],
                    item.timestamp_ms,
                    item.agent_id.as_deref(),
                )
            });
            work.push((item.key_id.clone(), anchor));
            records.push(record);
        }
        let witnesses = self.signer.fingerprint_batch(work, deadline).await;
        let mut results = Vec::with_capacity(items.len());
        for ((record, witness), item) in records.iter_mut().zip(witnesses).zip(&items) {
            let result = match witness {
                Ok(witness) => {
                    record.algorithm = Some(Algorithm::HmacSha256.name());
                    (record.outcome, record.code) = ("allowed", "OK");
                    let payload = match &item.agent_id {
                        Some(agent) => format!("{}:{agent}", witness.fingerprint),
                        None => witness.fingerprint.clone(),
                    };
                    record.message_sha256 = Some(hex::encode(Sha256::digest(payload.as_bytes())));
                    proto::fingerprint_batch_result::Result::Fingerprint(fingerprint_response(
                        witness,
                        item.key_id.clone(),
                    ))
                }
                Err(e) => {
                    failed_unless_denied(record, &e);
                    proto::fingerprint_batch_result::Result::Error(item_error(e))
                }
            };
            results.push(proto::FingerprintBatchResult {
                result: Some(result),
            });
        }
        self.settle_batch(call, records).await?;
        Ok(Response::new(proto::FingerprintBatchResponse { results }))
    }

    async fn list_keys_call(
        &self,
        call: &Call,
        _request: Request<proto::ListKeysRequest>,
    ) -> Result<Response<proto::ListKeysResponse>, Status> {
        self.allow(call, Operation::List, "")?;
        let keys = self
            .signer
            .keys()
            .into_iter()
            .map(|k| proto::KeyInfo {
                algorithm: algorithm(k.algorithm).into(),
                has_public_key: k.public_key.is_some(),
                key_id: k.id,
            })
            .collect();
        Ok(Response::new(proto::ListKeysResponse { keys }))
    }
}

#[tonic::async_trait]
impl signer_server::Signer for SignerService {
    async fn sign(
        &self,
        request: Request<proto::SignRequest>,
    ) -> Result<Response<proto::SignResponse>, Status> {
        let key_id = request.get_ref().key_id.clone();
        self.observed("Sign", Counted::Key(&key_id), request, Self::sign_call)
            .await
    }

    async fn get_public_key(
        &self,
        request: Request<proto::GetPublicKeyRequest>,
    ) -> Result<Response<proto::GetPublicKeyResponse>, Status> {
        let key_id = request.get_ref().key_id.clone();
        self.observed(
            "GetPublicKey",
            Counted::Key(&key_id),
            request,
            Self::get_public_key_call,
        )
        .await
    }

    async fn fingerprint(
        &self,
        request: Request<proto::FingerprintRequest>,
    ) -> Result<Response<proto::FingerprintResponse>, Status> {
        let key_id = request.get_ref().key_id.clone();
        self.observed(
            "Fingerprint",
            Counted::Key(&key_id),
            request,
            Self::fingerprint_call,
        )
        .await
    }

    async fn sign_batch(
        &self,
        request: Request<proto::SignBatchRequest>,
    ) -> Result<Response<proto::SignBatchResponse>, Status> {
        self.observed("SignBatch", Counted::Items, request, Self::sign_batch_call)
            .await
    }

    async fn fingerprint_batch(
        &self,
        request: Request<proto::FingerprintBatchRequest>,
    ) -> Result<Response<proto::FingerprintBatchResponse>, Status> {
        self.observed(
            "FingerprintBatch",
            Counted::Items,
            request,
            Self::fingerprint_batch_call,
        )
        .await
    }

    async fn list_keys(
        &self,
        request: Request<proto::ListKeysRequest>,
    ) -> Result<Response<proto::ListKeysResponse>, Status> {
        self.observed("ListKeys", Counted::NoKey, request, Self::list_keys_call)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units_and_malformed_values() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "S", "5", "5s", "123456789S", "-1S", "1.5S", "5 S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
