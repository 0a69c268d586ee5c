//! The raw token's speed, for comparison with `throughput`: signs 64-byte messages in-process
//! through the same PKCS#11 module with N threads, one session each, handles found once.
//! `SOFTHSM2_CONF=softhsm/state/softhsm2.conf cargo run --release --example raw_softhsm -- CONFIG [SECONDS] [THREADS]`

use std::time::{Duration, Instant};

use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use signet::backend::pkcs11::Token;
use signet::Config;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let config = Config::load(
        args.next()
            .ok_or("usage: raw_softhsm CONFIG [SECONDS] [THREADS]")?
            .as_ref(),
    )?;
    let seconds: u64 = args.next().map_or(Ok(3), |s| s.parse())?;
    let threads: usize = args.next().map_or(Ok(2), |s| s.parse())?;
    let Some(p) = signet::backend::pkcs11_only(&config) else {
        return Err(
            "raw_softhsm measures a PKCS#11 module; the configuration names a YubiHSM".into(),
        );
    };
    let token = Token::open(p, &p.pin.read()?, false)?;
    let mechanism_for = |key: &str| match key {
        "demo-ed25519" => Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
        "demo-p256" => Mechanism::Ecdsa,
        _ => Mechanism::Sha256Hmac,
    };
    for key in ["demo-ed25519", "demo-p256", "demo-hmac"] {
        let handle = token
            .session
            .find_objects(&[Attribute::Label(key.into()), Attribute::Sign(true)])?[0];
        let input = if key == "demo-p256" {
            vec![0x42; 32]
        } else {
            vec![0x42; 64]
        };
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let total: u64 = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let session = token.pkcs11.open_ro_session(token.slot).expect("session");
                    let input = &input;
                    scope.spawn(move || {
                        let mechanism = &mechanism_for(key);
                        let mut n = 0u64;
                        while Instant::now() < deadline {
                            session.sign(mechanism, handle, input).expect("sign");
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().expect("worker")).sum()
        });
        let rate = total as f64 / started.elapsed().as_secs_f64();
        println!("{key:14} {rate:>9.0} signatures/s raw ({threads} threads)");
    }
    token.close();
    Ok(())
}
