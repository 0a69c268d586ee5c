//! The SWT3 witness formula: validation of its inputs, the anchor fingerprint, and the payload
//! that is signed with HMAC-SHA256. Byte-identical to the swt3-ai Python SDK (0.7.8) and to
//! JavaScript's `String()` for every accepted input; an input they write differently is refused.

pub mod number;

use sha2::{Digest, Sha256};

use crate::error::Error;

/// Factors at or beyond ±2^63 are refused: the Rust SDK writes them through a saturating
/// `as i64` cast (so 1e19 and 1e20 would mint the same fingerprint).
const FACTOR_LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63

/// Validated inputs of one witness anchor.
#[derive(Debug, Clone, PartialEq)]
pub struct Anchor<'a> {
    /// The tenant; non-empty, no ':'.
    pub tenant_id: &'a str,
    /// The procedure; non-empty, no ':'.
    pub procedure_id: &'a str,
    /// The three factors; finite, |f| < 2^63, written alike by Python and JavaScript.
    pub factors: [f64; 3],
    /// Milliseconds since the Unix epoch; not negative.
    pub timestamp_ms: i64,
    /// The agent id, if any; non-empty, no ':'.
    pub agent_id: Option<&'a str>,
}

impl<'a> Anchor<'a> {
    /// Checks every field and returns the anchor, or `InvalidArgument` naming the field.
    pub fn new(
        tenant_id: &'a str,
        procedure_id: &'a str,
        factors: [f64; 3],
        timestamp_ms: i64,
        agent_id: Option<&'a str>,
    ) -> Result<Self, Error> {
        check_component("tenant_id", tenant_id)?;
        check_component("procedure_id", procedure_id)?;
        if let Some(agent) = agent_id {
            if agent.is_empty() {
                return Err(Error::InvalidArgument(
                    "agent_id is present but empty: omit the field to sign the fingerprint alone"
                        .into(),
                ));
            }
            check_component("agent_id", agent)?;
        }
        for (name, value) in ["factor_a", "factor_b", "factor_c"].iter().zip(factors) {
            factor_text(name, value)?;
        }
        if timestamp_ms < 0 {
            return Err(Error::InvalidArgument(format!(
                "timestamp_ms must not be negative, got {timestamp_ms}"
            )));
        }
        Ok(Anchor {
            tenant_id,
            procedure_id,
            factors,
            timestamp_ms,
            agent_id,
        })
    }

    /// The anchor fingerprint: the first 12 lowercase hex characters of
    /// `SHA-256("WITNESS:{tenant}:{procedure}:{a}:{b}:{c}:{timestamp_ms}")`.
    pub fn fingerprint(&self) -> String {
        // Every factor passed `factor_text` in `Anchor::new`.
        let [a, b, c] = self.factors.map(number::python_sdk);
        let input = format!(
            "WITNESS:{}:{}:{a}:{b}:{c}:{}",
            self.tenant_id, self.procedure_id, self.timestamp_ms
        );
        let mut hex = hex::encode(Sha256::digest(input.as_bytes()));
        hex.truncate(12);
        hex
    }

    /// The bytes signed with HMAC-SHA256: `"{fingerprint}:{agent_id}"` or `"{fingerprint}"`.
    pub fn signed_payload(&self, fingerprint: &str) -> String {
        match self.agent_id {
            Some(agent) => format!("{fingerprint}:{agent}"),
            None => fingerprint.to_owned(),
        }
    }
}

/// Writes a factor as swt3-ai Python does (`str(int(v))` for an integral value, `-0.0` as `0`;
/// `repr(v)` for any other), or refuses it, naming the field, when JavaScript's `String(v)`
/// (the TypeScript SDK and the SWT3 endpoint) writes other text: no fingerprint could then
/// verify with both. That happens for non-integral magnitudes from 1e-9 up to 1e-4 (Python
/// `1e-05`, `1e-07`; JavaScript `0.00001`, `1e-7`) and for integers beyond 2^53 whose exact
/// digits JavaScript shortens (2^60: `1152921504606846976` against `1152921504606847000`).
/// Both write ties with the even last digit, where the swt3-ai Rust crate does not.
pub fn factor_text(name: &str, value: f64) -> Result<String, Error> {
    if !value.is_finite() {
        return Err(Error::InvalidArgument(format!(
            "{name} must be a finite number, got {value}"
        )));
    }
    if value.abs() >= FACTOR_LIMIT {
        return Err(Error::InvalidArgument(format!(
            "{name} is out of range: its magnitude must be below 2^63, got {value:e}"
        )));
    }
    let (python, javascript) = number::python_and_javascript(value);
    if python != javascript {
        return Err(Error::InvalidArgument(format!(
            "{name}={python} cannot be fingerprinted: the swt3-ai Python SDK writes it as \
             {python} and JavaScript (the TypeScript SDK, the SWT3 endpoint) as {javascript}, \
             so no fingerprint would verify with both; round or scale the factor"
        )));
    }
    Ok(python)
}

/// The longest tenant, procedure or agent id accepted, in bytes. Ids are names, not data; the
/// bound keeps every signed payload small enough for any HSM (a YubiHSM2 takes at most 2019
/// bytes in one HMAC command).
pub const MAX_COMPONENT_BYTES: usize = 256;

fn check_component(name: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() && name != "agent_id" {
        return Err(Error::InvalidArgument(format!("{name} must not be empty")));
    }
    if value.len() > MAX_COMPONENT_BYTES {
        return Err(Error::InvalidArgument(format!(
            "{name} is {} bytes; at most {MAX_COMPONENT_BYTES} are accepted",
            value.len()
        )));
    }
    if value.contains(':') {
        return Err(Error::InvalidArgument(format!(
            "{name} must not contain ':' (it separates the fields of the signed formula, so two \
             different inputs could collide)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_ids_are_refused_without_being_echoed() {
        let long = "t".repeat(MAX_COMPONENT_BYTES + 1);
        for (t, p, a) in [
            (long.as_str(), "AI-INF.1", None),
            ("T", long.as_str(), None),
            ("T", "AI-INF.1", Some(long.as_str())),
        ] {
            let e = Anchor::new(t, p, [1.0, 2.0, 3.0], 1, a).expect_err("too long");
            assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument);
            assert!(!e.to_string().contains(&long));
        }
        let max = "t".repeat(MAX_COMPONENT_BYTES);
        Anchor::new(&max, &max, [1.0, 2.0, 3.0], 1, Some(&max)).expect("at the limit");
    }

    fn fp(t: &str, p: &str, f: [f64; 3], ts: i64) -> String {
        Anchor::new(t, p, f, ts, None).expect("valid").fingerprint()
    }

    /// Where the swt3-ai crate writes what Python and JavaScript write: no ties, no magnitude
    /// below 1e-4 (the crate writes 5e-324 and 1e-7 in plain digits).
    #[test]
    fn matches_the_rust_sdk_where_it_agrees_with_python() {
        let factors = [
            0.0, -0.0, 1.0, 1.5, -2.25, 0.1, 0.0001, 42.0, 1e15, 123456.789, 9.007e15, -9.2e18,
            4.5e18,
        ];
        let tenants = ["ENCLAVE_ALPHA", "tënant-ü", "租户", "a b"];
        for (i, &a) in factors.iter().enumerate() {
            for tenant in tenants {
                let b = factors[(i + 3) % factors.len()];
                let c = factors[(i + 7) % factors.len()];
                let ts = 1_774_800_000_000 + i as i64;
                assert_eq!(
                    fp(tenant, "AI-INF.1", [a, b, c], ts),
                    swt3_ai::mint_fingerprint(tenant, "AI-INF.1", a, b, c, ts),
                    "{tenant} {a} {b} {c}"
                );
            }
        }
    }

    #[test]
    fn ties_follow_python_not_the_rust_sdk() {
        let tie = 1.0 + 2f64.powi(-17);
        let python = "08858ffc4f56"; // sha256("WITNESS:T:P:1.0000076293945312:1:1:1")
        assert_eq!(fp("T", "P", [tie, 1.0, 1.0], 1), python);
        assert_ne!(
            swt3_ai::mint_fingerprint("T", "P", tie, 1.0, 1.0, 1),
            python
        );
        assert_eq!(
            factor_text("factor_a", tie).expect("accepted"),
            "1.0000076293945312"
        );
    }

    #[test]
    fn what_python_and_javascript_write_differently_is_refused() {
        for (value, python, javascript) in [
            (1e-5, "1e-05", "0.00001"),
            (-3.5e-7, "-3.5e-07", "-3.5e-7"),
            (9.99e-5, "9.99e-05", "0.0000999"),
            (1.5e-9, "1.5e-09", "1.5e-9"),
            (2f64.powi(60), "1152921504606846976", "1152921504606847000"),
        ] {
            let err = factor_text("factor_b", value).expect_err("refused");
            assert_eq!(err.kind(), crate::error::ErrorKind::InvalidArgument);
            let text = err.to_string();
            assert!(text.contains("factor_b="), "{text}");
            assert!(
                text.contains(&format!("SDK writes it as {python} ")),
                "{text}"
            );
            assert!(text.contains(&format!("as {javascript},")), "{text}");
        }
        // Both write exponent notation alike below 1e-9, plain digits alike from 1e-4 up.
        assert_eq!(factor_text("f", 1.5e-10).expect("ok"), "1.5e-10");
        assert_eq!(factor_text("f", 5e-324).expect("ok"), "5e-324");
        assert_eq!(factor_text("f", 1e-4).expect("ok"), "0.0001");
        assert_eq!(factor_text("f", 9.2e18).expect("ok"), "9200000000000000000");
        assert_eq!(factor_text("f", -0.0).expect("ok"), "0");
    }

    #[test]
    fn sdk_published_vectors() {
        assert_eq!(
            fp("ENCLAVE_ALPHA", "AI-INF.1", [1.0, 1.0, 0.0], 1774800000000),
            "f7f20b581cbf"
        );
        assert_eq!(
            fp(
                "AWS_NITRO_ENCLAVE",
                "AI-INF.2",
                [5000.0, 8000.0, 1.0],
                1774800001000
            ),
            "4ed784765e6c"
        );
        assert_eq!(
            fp("AZURE_TRUSTED_EXEC", "AI-DATA.1", [0.0; 3], 1774800009000),
            "289eb7452237"
        );
    }

    #[test]
    fn payload_with_and_without_agent() {
        let with = Anchor::new("t", "p", [1.0; 3], 1, Some("agent-007")).expect("valid");
        assert_eq!(
            with.signed_payload("b16bf9139c16"),
            "b16bf9139c16:agent-007"
        );
        let without = Anchor::new("t", "p", [1.0; 3], 1, None).expect("valid");
        assert_eq!(without.signed_payload("b16bf9139c16"), "b16bf9139c16");
    }

    #[test]
    fn rejections_name_the_field() {
        let cases: [(Result<Anchor, Error>, &str); 9] = [
            (
                Anchor::new("", "p", [0.0; 3], 0, None),
                "tenant_id must not be empty",
            ),
            (
                Anchor::new("t", "", [0.0; 3], 0, None),
                "procedure_id must not be empty",
            ),
            (
                Anchor::new("a:b", "p", [0.0; 3], 0, None),
                "tenant_id must not contain ':'",
            ),
            (
                Anchor::new("t", "p:q", [0.0; 3], 0, None),
                "procedure_id must not contain ':'",
            ),
            (
                Anchor::new("t", "p", [0.0; 3], 0, Some("x:y")),
                "agent_id must not contain ':'",
            ),
            (
                Anchor::new("t", "p", [0.0; 3], 0, Some("")),
                "agent_id is present but empty",
            ),
            (
                Anchor::new("t", "p", [f64::NAN, 0.0, 0.0], 0, None),
                "factor_a must be a finite",
            ),
            (
                Anchor::new("t", "p", [0.0, 0.0, 1e19], 0, None),
                "factor_c is out of range",
            ),
            (
                Anchor::new("t", "p", [0.0; 3], -1, None),
                "timestamp_ms must not be negative",
            ),
        ];
        for (result, want) in cases {
            let err = result.expect_err(want);
            assert!(
                err.to_string().contains(want),
                "{err} should contain {want}"
            );
        }
    }
}
