//! Measures the software verifiers that verify-after-sign could use, in one run on this
//! machine: `cargo run --release --example verify_speed`.

use std::time::Instant;

use p256::ecdsa::signature::{Signer as _, Verifier as _};

fn per_call_us(n: u32, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn main() {
    let n = 4000;
    let message = [7u8; 64];

    let p256_key = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).expect("key");
    let p256_sig: p256::ecdsa::Signature = p256_key.sign(&message);
    let p256_public = *p256_key.verifying_key();
    let point = p256_public.to_encoded_point(false);
    let ring_p256 = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        point.as_bytes().to_vec(),
    );
    let p256_raw = p256_sig.to_bytes();

    let ed_key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
    let ed_sig = ed25519_dalek::Signer::sign(&ed_key, &message);
    let ed_public = ed_key.verifying_key();
    let ring_ed = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ED25519,
        ed_public.as_bytes().to_vec(),
    );
    let ed_raw = ed_sig.to_bytes();

    let p256_crate = per_call_us(n, || {
        assert!(p256_public.verify(&message, &p256_sig).is_ok())
    });
    let p256_ring = per_call_us(n, || assert!(ring_p256.verify(&message, &p256_raw).is_ok()));
    let ed_dalek = per_call_us(n, || {
        assert!(ed_public.verify_strict(&message, &ed_sig).is_ok())
    });
    let ed_ring = per_call_us(n, || assert!(ring_ed.verify(&message, &ed_raw).is_ok()));
    println!("verify of a 64-byte message, {n} calls each, one thread:");
    println!("  ECDSA P-256: p256 crate {p256_crate:.1} us, ring {p256_ring:.1} us");
    println!("  Ed25519:     ed25519-dalek (strict) {ed_dalek:.1} us, ring {ed_ring:.1} us");
}
