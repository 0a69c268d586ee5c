//! How the agent writes SWT3 factors, checked against Python itself and against JavaScript:
//! more than 100,000 doubles (random bit patterns, ties built as n × 2^-k, subnormals, values
//! around 1e-9, 1e-6, 1e-4, 1e16, 2^53 and 2^63, integers, ±0) through the test venv's `repr`
//! and swt3-ai 0.7.8's own `mint_fingerprint`; and `String()` vectors written by Node
//! (`tests/vectors/js_number_strings.txt`, made by `tests/vectors/make_js_number_strings.js`).

mod common;

use std::process::Command;

use signet::swt3::{number, Anchor};

/// A deterministic generator (splitmix64): the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn sign(&mut self, v: f64) -> f64 {
        if self.next() & 1 == 1 {
            -v
        } else {
            v
        }
    }
}

/// `v` moved by `steps` units in the last place (through zero into the negatives, too).
fn ulps(v: f64, steps: i64) -> f64 {
    let bits = v.to_bits() as i64;
    f64::from_bits(bits.wrapping_add(steps) as u64)
}

fn corpus() -> Vec<f64> {
    let mut rng = Rng(0x5157_3300_0000_0015);
    let mut out = vec![
        0.0,
        -0.0,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        -5e-324,
    ];
    // Any finite double, uniformly over bit patterns (so about half are below 1e-9 or above 2^63).
    while out.len() < 40_000 {
        let v = f64::from_bits(rng.next());
        if v.is_finite() {
            out.push(v);
        }
    }
    // Magnitudes a factor usually has: 2^-20 to 2^40, every mantissa.
    for _ in 0..20_000 {
        let exp = 1023 - 20 + rng.below(61);
        let bits = (exp << 52) | (rng.next() >> 12);
        let v = f64::from_bits(bits);
        out.push(rng.sign(v));
    }
    // Ties: n × 2^-k (n odd, below 2^53) is exactly n × 5^k × 10^-k, an expansion ending in 5.
    // With 18 significant digits, of which the shortest form needs 17, it lies halfway between
    // two 17-digit decimals that both read back as it (1 + 2^-17 = 1.00000762939453125).
    let mut built = 0;
    while built < 15_000 {
        let k = 2 + rng.below(24) as i32; // 2..=25
        let five_k = 5u64.pow(k as u32);
        let low = 100_000_000_000_000_000u64.div_ceil(five_k);
        let high = ((1_000_000_000_000_000_000u64 - 1) / five_k).min((1 << 53) - 1);
        let n = (low + rng.below(high - low + 1)) | 1;
        let v = n as f64 * 2f64.powi(-k);
        if mantissa_digits(&format!("{v:e}")).len() == 17 {
            out.push(rng.sign(v));
            built += 1;
        }
    }
    // Near-ties and other short expansions: n × 2^-k for any n and k.
    for _ in 0..10_000 {
        let width = 18 + rng.below(36); // 18..=53 bits
        let n = (rng.next() >> (64 - width)) | 1 | (1 << (width - 1));
        let k = 1 + rng.below(60) as i32;
        let v = n as f64 * 2f64.powi(-k);
        out.push(rng.sign(v));
    }
    // Subnormals.
    for _ in 0..3_000 {
        let v = f64::from_bits(1 + rng.below((1 << 52) - 1));
        out.push(rng.sign(v));
    }
    // Around every place where Python or JavaScript changes layout, and 2^53, 2^63.
    for edge in [
        1e-9,
        1e-6,
        1e-5,
        1e-4,
        1e-3,
        1e15,
        1e16,
        1e17,
        1e21,
        2f64.powi(52),
        2f64.powi(53),
        2f64.powi(63),
        f64::MIN_POSITIVE,
    ] {
        for step in -400..=400 {
            out.push(ulps(edge, step));
            out.push(-ulps(edge, step));
        }
    }
    // Every power of two, powers of ten and their neighbours.
    for e in -1074..=1023 {
        out.push(2f64.powi(e));
    }
    for e in -323..=308 {
        let v: f64 = format!("1e{e}").parse().expect("power of ten");
        out.extend([v, ulps(v, -1), ulps(v, 1)]);
    }
    // Integers: small, up to 2^53, and beyond up to 2^63.
    for i in 0..2_000 {
        let (small, exact, big) = (
            i as f64,
            rng.below(1 << 53) as f64,
            (rng.next() >> 1) as f64,
        );
        for v in [small, exact, big] {
            out.push(rng.sign(v));
        }
    }
    out
}

fn python_reference(values: &[f64]) -> Vec<(String, String)> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/swt3_reference.py"
    );
    let input: String = values
        .iter()
        .map(|v| format!("{:016x}\n", v.to_bits()))
        .collect();
    let mut command = Command::new(common::callers_python());
    command.arg(script).arg("repr");
    let out = common::run_with_stdin(command, input.as_bytes());
    common::assert_success(&out, "tests/python/swt3_reference.py repr");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    text.lines()
        .map(|line| {
            let (repr, fp) = line.split_once('\t').expect("repr TAB fingerprint");
            (repr.to_owned(), fp.to_owned())
        })
        .collect()
}

/// Where Python's and JavaScript's texts differ (so the agent refuses), by magnitude alone:
/// non-integral from 1e-9 up to 1e-4, integral beyond 2^53, anything from 2^63 up.
fn may_be_refused(v: f64) -> bool {
    let a = v.abs();
    let integral = v == v.trunc();
    (!integral && (1e-9..1e-4).contains(&a)) || (integral && a > 2f64.powi(53))
}

#[test]
fn agrees_with_python_repr_and_swt3_ai_on_the_corpus() {
    let values = corpus();
    assert!(values.len() >= 100_000, "corpus of {}", values.len());
    let reference = python_reference(&values);
    assert_eq!(reference.len(), values.len(), "one answer per value");

    let (mut signed, mut refused, mut ties, mut subnormals) = (0, 0, 0, 0);
    for (&v, (repr, sdk_fp)) in values.iter().zip(&reference) {
        let shortest = number::shortest(v);
        assert_eq!(
            &shortest.python_repr(),
            repr,
            "repr of {:016x}",
            v.to_bits()
        );
        if v != 0.0 && v.abs() < f64::MIN_POSITIVE {
            subnormals += 1;
        }
        // A tie: Rust's `{:e}` digits (rounding half up) differ from Python's.
        let rust = format!("{v:e}");
        if shortest.digits != mantissa_digits(&rust) {
            ties += 1;
        }
        match Anchor::new("T", "P", [v, 1.0, 1.0], 1, None) {
            Ok(anchor) => {
                assert_eq!(&anchor.fingerprint(), sdk_fp, "{repr}");
                signed += 1;
            }
            Err(e) => {
                assert!(may_be_refused(v), "{repr} refused: {e}");
                assert!(e.to_string().starts_with("factor_a"), "{e}");
                refused += 1;
            }
        }
    }
    eprintln!(
        "{} doubles: {signed} signed and equal to swt3-ai's fingerprint, {refused} refused; \
         {ties} ties where Rust's {{}} differs from repr, {subnormals} subnormals",
        values.len()
    );
    assert!(ties >= 5_000, "only {ties} ties in the corpus");
    assert!(subnormals >= 3_000, "only {subnormals} subnormals");
    assert!(signed >= 50_000, "only {signed} signed");
}

fn mantissa_digits(sci: &str) -> String {
    let mantissa = sci.split('e').next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_start_matches('0').trim_end_matches('0');
    if digits.is_empty() {
        "0".into()
    } else {
        digits.to_owned()
    }
}

#[test]
fn agrees_with_javascript_string_vectors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/js_number_strings.txt"
    );
    let text = std::fs::read_to_string(path).expect("tests/vectors/js_number_strings.txt");
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (bits, js) = line.split_once(' ').expect("bits SPACE String(v)");
        let v = f64::from_bits(u64::from_str_radix(bits, 16).expect("hex bits"));
        assert_eq!(number::javascript(v), js, "String() of {bits}");
        checked += 1;
    }
    assert!(checked >= 5_000, "only {checked} vectors");
}
