//! The raw side of `signet bench`: the same signatures (or, with `verify`, `C_Verify` of one
//! signature) straight through the PKCS#11 module in this process, with one session per thread
//! and the key handle found once, as a baseline for the agent (or, pointed at
//! `p11-kit-client.so`, to measure a PKCS#11 remoting peer).

use std::time::{Duration, Instant};

use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use sha2::{Digest, Sha256};

use super::{classify, discover, mechanism, Token};
use crate::bench::Report;
use crate::config;
use crate::error::Error;
use crate::key::Algorithm;
use crate::secret::Secret;

/// Signs `size`-byte messages with `key_id` on `threads` threads for `duration`; with `verify`,
/// checks one signature over and over instead (`C_Verify` with the secret key for HMAC, with
/// the public key object of the same label for Ed25519 and P-256).
pub fn run(
    config: &config::Pkcs11,
    pin: &Secret,
    key_id: &str,
    threads: usize,
    size: usize,
    duration: Duration,
    verify: bool,
) -> Result<Report, Error> {
    let token = Token::open(config, pin, false)?;
    let result = measure(&token, key_id, threads, size, duration, verify);
    token.close();
    result
}

fn measure(
    token: &Token,
    key_id: &str,
    threads: usize,
    size: usize,
    duration: Duration,
    verify: bool,
) -> Result<Report, Error> {
    let key = discover::find_keys(&token.session)?
        .into_iter()
        .find(|k| k.label.as_deref() == Some(key_id) && k.is_signing_key())
        .ok_or_else(|| Error::NotOnToken(key_id.to_owned()))?;
    let algorithm = key.algorithm.clone().map_err(Error::FailedPrecondition)?;
    let message = vec![0x5au8; size];
    // What the mechanism takes: ECDSA signs a digest (made once here, as a caller would).
    let input = match algorithm {
        Algorithm::EcdsaP256Sha256 => Sha256::digest(&message).to_vec(),
        _ => message,
    };
    let (pkcs11, slot, handle) = (&token.pkcs11, token.slot, key.handle);
    let check = verify
        .then(|| verifier(token, key_id, algorithm, handle, &input))
        .transpose()?;
    let (input, check) = (&input, &check);
    let started = Instant::now();
    let until = started + duration;
    let parts: Vec<Result<Report, Error>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(move || {
                    let mechanism = mechanism(algorithm);
                    let session = pkcs11.open_ro_session(slot).map_err(classify)?;
                    let mut report = Report::default();
                    while Instant::now() < until {
                        let begun = Instant::now();
                        let done = match check {
                            Some((public, signature)) => session
                                .verify(&mechanism, *public, input, signature)
                                .map(drop),
                            None => session.sign(&mechanism, handle, input).map(drop),
                        };
                        match done {
                            Ok(()) => report.ok += 1,
                            Err(e) => {
                                *report.errors.entry(classify(e).to_string()).or_default() += 1
                            }
                        }
                        report
                            .latencies_us
                            .push(begun.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    }
                    Ok(report)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(Error::Internal("a raw bench thread panicked".into())))
            })
            .collect()
    });
    let mut total = Report {
        label: format!(
            "raw {} {key_id} ({}) {size}-byte, {threads} thread(s)",
            if verify { "C_Verify" } else { "C_Sign" },
            algorithm.name()
        ),
        ..Report::default()
    };
    for part in parts {
        let part = part?;
        total.ok += part.ok;
        total.latencies_us.extend(part.latencies_us);
        for (code, n) in part.errors {
            *total.errors.entry(code).or_default() += n;
        }
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

/// The key object `C_Verify` takes (the secret key itself for HMAC, the public key object of the
/// same label otherwise) and one signature over `input` to check.
fn verifier(
    token: &Token,
    key_id: &str,
    algorithm: Algorithm,
    handle: ObjectHandle,
    input: &[u8],
) -> Result<(ObjectHandle, Vec<u8>), Error> {
    let signature = token
        .session
        .sign(&mechanism(algorithm), handle, input)
        .map_err(classify)?;
    if algorithm == Algorithm::HmacSha256 {
        return Ok((handle, signature));
    }
    let public = token
        .session
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Label(key_id.as_bytes().to_vec()),
        ])
        .map_err(classify)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::NotOnToken(format!("{key_id} (its public key object)")))?;
    Ok((public, signature))
}
