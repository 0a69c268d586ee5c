//! The `signet.v1.Signer` service: makes each request a [`Call`] and an operation, passes it to
//! the tonic-free [`Service`] gate, and converts the answer back. Nothing else happens here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};

use super::convert;
use super::proto::{self, signer_server};
use super::stamps::{Arrival, Peer};
use crate::config::Limits;
use crate::error::Error;
use crate::identity::{Caller, Identity};
use crate::service::{Call, Delivery, Service};

/// The most a client deadline is brought forward (see [`SignerService::timeout`]).
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// The gRPC face of the [`Service`].
#[derive(Clone)]
pub struct SignerService {
    service: Arc<Service>,
    /// The deadline of calls whose client set none, and the most any call may take.
    default_timeout: Duration,
}

impl SignerService {
    /// Serves `service` within `limits` (the default deadline).
    pub fn new(service: Arc<Service>, limits: &Limits) -> Self {
        SignerService {
            service,
            default_timeout: Duration::from_millis(limits.request_timeout_ms),
        }
    }

    /// The call a request makes: who sent it through which listener, when it arrived, its
    /// deadline, and its delivery ticket.
    fn call<T>(&self, request: &Request<T>) -> Result<Call, Status> {
        let arrived = request
            .extensions()
            .get::<Arrival>()
            .map_or_else(Instant::now, |a| a.0);
        Ok(Call {
            caller: caller_of(request),
            arrived,
            deadline: arrived + self.timeout(request)?,
            delivery: request.extensions().get::<Delivery>().cloned(),
        })
    }

    /// The client's `grpc-timeout`, capped at the default timeout, so no call waits longer
    /// than the agent allows. The agent alone answers deadlines on this side (no transport
    /// timer races it), but a client enforces the same deadline on its own side and gives up
    /// exactly then (tonic's client with `CANCELLED`): so the client's deadline is brought
    /// forward by a small margin, a tenth of it and at most [`DEADLINE_MARGIN`], for the
    /// agent's precise `DEADLINE_EXCEEDED` to arrive first.
    fn timeout<T>(&self, request: &Request<T>) -> Result<Duration, Error> {
        let Some(value) = request.metadata().get("grpc-timeout") else {
            return Ok(self.default_timeout);
        };
        let timeout = value
            .to_str()
            .ok()
            .and_then(parse_grpc_timeout)
            .ok_or_else(|| Error::InvalidArgument("the grpc-timeout header is malformed".into()))?;
        let margin = (timeout / 10).min(DEADLINE_MARGIN);
        Ok((timeout - margin).min(self.default_timeout))
    }
}

/// The caller's identity (unix peer credentials, a verified client certificate, or none) and
/// the listener, which the server put in the request when it accepted the connection.
fn caller_of<T>(request: &Request<T>) -> Caller {
    request.extensions().get::<Peer>().map_or_else(
        || Caller {
            identity: Identity::Anonymous,
            listener: String::new(),
        },
        |peer| Caller {
            identity: peer.identity.clone(),
            listener: peer.listener.to_string(),
        },
    )
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

#[tonic::async_trait]
impl signer_server::Signer for SignerService {
    async fn sign(
        &self,
        request: Request<proto::SignRequest>,
    ) -> Result<Response<proto::SignResponse>, Status> {
        let call = self.call(&request)?;
        let op = convert::sign_op(request.into_inner());
        let signed = self.service.sign(&call, op).await?;
        Ok(Response::new(convert::sign_response(signed)))
    }

    async fn get_public_key(
        &self,
        request: Request<proto::GetPublicKeyRequest>,
    ) -> Result<Response<proto::GetPublicKeyResponse>, Status> {
        let call = self.call(&request)?;
        let request = request.get_ref();
        let info = self
            .service
            .public_key(&call, &request.key_id, request.key_version)?;
        Ok(Response::new(convert::public_key_response(info)?))
    }

    async fn fingerprint(
        &self,
        request: Request<proto::FingerprintRequest>,
    ) -> Result<Response<proto::FingerprintResponse>, Status> {
        let call = self.call(&request)?;
        let op = convert::fingerprint_op(request.into_inner());
        let minted = self.service.fingerprint(&call, op).await?;
        Ok(Response::new(convert::fingerprint_response(minted)))
    }

    async fn sign_batch(
        &self,
        request: Request<proto::SignBatchRequest>,
    ) -> Result<Response<proto::SignBatchResponse>, Status> {
        let call = self.call(&request)?;
        let ops = request.into_inner().items.into_iter().map(convert::sign_op);
        let results = self.service.sign_batch(&call, ops.collect()).await?;
        Ok(Response::new(convert::sign_batch_response(results)))
    }

    async fn fingerprint_batch(
        &self,
        request: Request<proto::FingerprintBatchRequest>,
    ) -> Result<Response<proto::FingerprintBatchResponse>, Status> {
        let call = self.call(&request)?;
        let ops = request.into_inner().items.into_iter();
        let results = self
            .service
            .fingerprint_batch(&call, ops.map(convert::fingerprint_op).collect())
            .await?;
        Ok(Response::new(convert::fingerprint_batch_response(results)))
    }

    async fn verify(
        &self,
        request: Request<proto::VerifyRequest>,
    ) -> Result<Response<proto::VerifyResponse>, Status> {
        let call = self.call(&request)?;
        let op = convert::verify_op(request.into_inner());
        let verified = self.service.verify(&call, op).await?;
        Ok(Response::new(convert::verify_response(verified)))
    }

    async fn verify_fingerprint(
        &self,
        request: Request<proto::VerifyFingerprintRequest>,
    ) -> Result<Response<proto::VerifyFingerprintResponse>, Status> {
        let call = self.call(&request)?;
        let op = convert::verify_fingerprint_op(request.into_inner());
        let checked = self.service.verify_fingerprint(&call, op).await?;
        Ok(Response::new(convert::verify_fingerprint_response(checked)))
    }

    async fn verify_batch(
        &self,
        request: Request<proto::VerifyBatchRequest>,
    ) -> Result<Response<proto::VerifyBatchResponse>, Status> {
        let call = self.call(&request)?;
        let ops = request
            .into_inner()
            .items
            .into_iter()
            .map(convert::verify_op);
        let results = self.service.verify_batch(&call, ops.collect()).await?;
        Ok(Response::new(convert::verify_batch_response(results)))
    }

    async fn verify_fingerprint_batch(
        &self,
        request: Request<proto::VerifyFingerprintBatchRequest>,
    ) -> Result<Response<proto::VerifyFingerprintBatchResponse>, Status> {
        let call = self.call(&request)?;
        let ops = request.into_inner().items.into_iter();
        let results = self
            .service
            .verify_fingerprint_batch(&call, ops.map(convert::verify_fingerprint_op).collect())
            .await?;
        Ok(Response::new(convert::verify_fingerprint_batch_response(
            results,
        )))
    }

    async fn list_keys(
        &self,
        request: Request<proto::ListKeysRequest>,
    ) -> Result<Response<proto::ListKeysResponse>, Status> {
        let call = self.call(&request)?;
        let keys = self.service.list_keys(&call)?;
        Ok(Response::new(convert::list_keys_response(keys)))
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
