//! How the SWT3 SDKs write a factor into the fingerprint formula: Python's `float.__repr__` and
//! JavaScript's `Number::toString`, both built on the shortest round-trip decimal with ties to
//! the even digit, computed here exactly with the standard library only.
//!
//! swt3-ai (Python) writes an integral factor as `str(int(v))` (`1`, `-0.0` as `0`) and any
//! other as `str(v)`, which is `repr(v)`. JavaScript's `String(v)` writes the same digits in a
//! different layout. Both pick, among the shortest decimals that read back as `v`, the one
//! closest to `v`, and the one with the even last digit when two are equally close (Rust's `{}`
//! and the swt3-ai crate pick the other one there: `1.0000076293945313` for 1 + 2⁻¹⁷).

/// The shortest decimal that reads back as a finite double: `±0.DIGITS × 10^point`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortest {
    /// Whether the sign bit is set (true for `-0.0`).
    pub negative: bool,
    /// ASCII digits without leading or trailing zeros; `"0"` for zero.
    pub digits: String,
    /// Python's `decpt`: the value is `0.DIGITS × 10^point`.
    pub point: i32,
}

/// The shortest round-trip decimal of `v` (finite), the closest to `v` among equally short
/// ones, ties to the even last digit: what Python's `repr` and ECMAScript's `Number::toString`
/// choose.
///
/// Exact: the candidates of a length are the two neighbours of `v`'s decimal expansion at that
/// length (Rust's fixed-precision formatting is exact), "reads back as `v`" is decided by
/// Rust's correctly rounded parser, and a tie is an expansion that ends in one 5 right after
/// them. Rust's own `{:e}` gives the shortest length (not always the same digits), so only
/// that length and the one below are tried, on the expansion to 30 further digits when those
/// settle the choice, else on the whole expansion from length 1.
pub fn shortest(v: f64) -> Shortest {
    let negative = v.is_sign_negative();
    let a = v.abs();
    if a == 0.0 || !a.is_finite() {
        return Shortest {
            negative,
            digits: "0".into(),
            point: 1,
        };
    }
    let rust = format!("{a:e}");
    let rust_len = rust
        .split('e')
        .next()
        .unwrap_or_default()
        .bytes()
        .filter(u8::is_ascii_digit)
        .count();
    let lengths = rust_len.saturating_sub(1).max(1)..=rust_len;
    if let Some((digits, exponent)) = window_expansion(a, rust_len) {
        if let Some(found) = pick(negative, a, &digits, exponent, lengths) {
            return found;
        }
    }
    let (digits, exponent) = exact_expansion(a, sci_exponent(&rust));
    pick(negative, a, &digits, exponent, 1..=digits.len()).unwrap_or_else(|| {
        // Unreachable: the whole expansion is `a` itself, so its full length is picked.
        let scale = exponent - digits.len() as i32 + 1;
        finish(negative, digits, scale)
    })
}

/// The first of `lengths` at which a neighbour of `digits × 10^(exponent + 1 - len)` reads
/// back as `a`, and the closer (or even) neighbour there.
fn pick(
    negative: bool,
    a: f64,
    digits: &str,
    exponent: i32,
    lengths: std::ops::RangeInclusive<usize>,
) -> Option<Shortest> {
    for len in lengths {
        let (head, rest) = digits.split_at(len.min(digits.len()));
        // In units of the last kept digit.
        let scale = exponent - head.len() as i32 + 1;
        if rest.bytes().all(|d| d == b'0') {
            return Some(finish(negative, head.to_owned(), scale));
        }
        let down = head.to_owned();
        let up = increment(head);
        let down_ok = reads_back(&down, scale, a);
        let up_ok = reads_back(&up, scale, a);
        let chosen = match (down_ok, up_ok) {
            (false, false) => continue,
            (true, false) => down,
            (false, true) => up,
            (true, true) => match compare_to_half(rest) {
                std::cmp::Ordering::Less => down,
                std::cmp::Ordering::Greater => up,
                std::cmp::Ordering::Equal if last_is_even(&down) => down,
                std::cmp::Ordering::Equal => up,
            },
        };
        return Some(finish(negative, chosen, scale));
    }
    None
}

/// What Python writes for `repr(v)` (and `str(v)`) of a finite float.
pub fn python_repr(v: f64) -> String {
    shortest(v).python_repr()
}

/// What JavaScript writes for `String(v)` of a finite number (ECMAScript `Number::toString`).
pub fn javascript(v: f64) -> String {
    shortest(v).javascript()
}

/// What swt3-ai 0.7.8 (`swt3_ai.fingerprint.mint_fingerprint`) writes for a finite factor:
/// `str(int(v))` when `v == int(v)`, otherwise `str(v)`.
pub fn python_sdk(v: f64) -> String {
    python_and_javascript(v).0
}

/// [`python_sdk`] and [`javascript`] of `v`, from one [`shortest`].
pub fn python_and_javascript(v: f64) -> (String, String) {
    let s = shortest(v);
    let python = if v == 0.0 {
        "0".into()
    } else if v == v.trunc() {
        // Exact: Rust's fixed-precision formatting writes every digit of an integral double.
        format!("{v:.0}")
    } else {
        s.python_repr()
    };
    (python, s.javascript())
}

impl Shortest {
    /// Python's `repr` layout: exponent notation below 1e-4 and from 1e16 (`1e-05`, `1e+16`),
    /// `.0` after a whole number, `-0.0`.
    pub fn python_repr(&self) -> String {
        let sign = if self.negative { "-" } else { "" };
        if self.digits == "0" {
            return format!("{sign}0.0");
        }
        let (digits, point) = (self.digits.as_str(), self.point);
        let body = if point <= -4 || point > 16 {
            let exp = point - 1;
            let (first, rest) = digits.split_at(1);
            let dot = if rest.is_empty() { "" } else { "." };
            let exp_sign = if exp < 0 { '-' } else { '+' };
            format!("{first}{dot}{rest}e{exp_sign}{:02}", exp.unsigned_abs())
        } else {
            plain(digits, point, ".0")
        };
        format!("{sign}{body}")
    }

    /// ECMAScript's `Number::toString` layout: exponent notation below 1e-6 and from 1e21
    /// (`1e-7`, `1e+21`), no `.0`, `0` for both zeros.
    pub fn javascript(&self) -> String {
        if self.digits == "0" {
            return "0".into();
        }
        let sign = if self.negative { "-" } else { "" };
        let (digits, point) = (self.digits.as_str(), self.point);
        let body = if (-5..=21).contains(&point) {
            plain(digits, point, "")
        } else {
            let exp = point - 1;
            let (first, rest) = digits.split_at(1);
            let dot = if rest.is_empty() { "" } else { "." };
            let exp_sign = if exp < 0 { '-' } else { '+' };
            format!("{first}{dot}{rest}e{exp_sign}{}", exp.unsigned_abs())
        };
        format!("{sign}{body}")
    }
}

/// `a`'s expansion rounded to 30 digits beyond the first `len`, when the rounding cannot
/// change which neighbour of a prefix of at most `len` digits is nearer or whether it is a tie:
/// some digit after position `len + 1` is not zero (so no prefix's remainder shows as exactly
/// zero or exactly one half, and the true one differs from the shown one by less than any
/// digit of it). `a` is finite and positive.
fn window_expansion(a: f64, len: usize) -> Option<(String, i32)> {
    let precision = len + 30;
    let text = format!("{a:.precision$e}");
    let digits: String = text
        .split('e')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let settled = digits.bytes().skip(len + 1).any(|d| d != b'0');
    settled.then(|| (digits, sci_exponent(&text)))
}

/// The digits of `a`'s exact decimal expansion without trailing zeros, and the power of ten
/// of the first digit. `a` is finite and positive; `upper` is at least that power (the
/// exponent of its shortest form).
fn exact_expansion(a: f64, upper: i32) -> (String, i32) {
    // a = m × 2^q with m odd: its expansion ends at 10^min(q, 0), so it has at most
    // upper - min(q, 0) + 1 significant digits.
    let bits = a.to_bits();
    let fraction = bits & ((1 << 52) - 1);
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let (mut m, mut q) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    while m & 1 == 0 {
        m >>= 1;
        q += 1;
    }
    let precision = (upper - q.min(0)).max(20) as usize;
    let text = format!("{a:.precision$e}");
    let exponent = sci_exponent(&text);
    let mantissa = text.split('e').next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let trimmed = digits.trim_end_matches('0');
    (trimmed.to_owned(), exponent)
}

fn sci_exponent(text: &str) -> i32 {
    text.rsplit('e')
        .next()
        .and_then(|e| e.parse().ok())
        .unwrap_or_default()
}

/// `digits × 10^scale` as a [`Shortest`], trailing zeros removed.
fn finish(negative: bool, digits: String, scale: i32) -> Shortest {
    let point = digits.len() as i32 + scale;
    let trimmed = digits.trim_end_matches('0');
    Shortest {
        negative,
        digits: trimmed.to_owned(),
        point,
    }
}

/// Whether `digits × 10^scale` reads back as `a` (round half to even, as every reader does).
fn reads_back(digits: &str, scale: i32, a: f64) -> bool {
    format!("{digits}e{scale}").parse::<f64>() == Ok(a)
}

/// `digits + 1` as a decimal string (one digit longer after a carry out of all nines).
fn increment(digits: &str) -> String {
    let mut out = digits.as_bytes().to_vec();
    for d in out.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return String::from_utf8_lossy(&out).into_owned();
        }
    }
    format!("1{}", String::from_utf8_lossy(&out))
}

/// Compares the dropped digits `0.rest` with one half.
fn compare_to_half(rest: &str) -> std::cmp::Ordering {
    let mut bytes = rest.bytes();
    match bytes.next() {
        Some(d) if d > b'5' => std::cmp::Ordering::Greater,
        Some(b'5') if bytes.any(|d| d != b'0') => std::cmp::Ordering::Greater,
        Some(b'5') => std::cmp::Ordering::Equal,
        _ => std::cmp::Ordering::Less,
    }
}

fn last_is_even(digits: &str) -> bool {
    // ASCII digits have the parity of their value (b'0' is 48).
    digits.bytes().last().is_some_and(|d| d & 1 == 0)
}

/// `0.digits × 10^point` without an exponent; `integral_suffix` after a whole number.
fn plain(digits: &str, point: i32, integral_suffix: &str) -> String {
    let len = digits.len() as i32;
    if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point < len {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    } else {
        let zeros = "0".repeat((point - len) as usize);
        format!("{digits}{zeros}{integral_suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_the_even_digit() {
        let two = 2f64;
        assert_eq!(python_repr(1.0 + two.powi(-17)), "1.0000076293945312");
        assert_eq!(python_repr(1000.0 + two.powi(-14)), "1000.0000610351562");
        assert_eq!(python_repr(1e12 + 1.0 / 32.0), "1000000000000.0312");
        assert_eq!(javascript(1.0 + two.powi(-17)), "1.0000076293945312");
        // Rust's own formatting rounds these ties up: the disagreement this module exists for.
        assert_eq!(format!("{}", 1.0 + two.powi(-17)), "1.0000076293945313");
    }

    #[test]
    fn layouts() {
        let cases: [(f64, &str, &str, &str); 14] = [
            (0.0, "0.0", "0", "0"),
            (-0.0, "-0.0", "0", "0"),
            (1.0, "1.0", "1", "1"),
            (-1.5, "-1.5", "-1.5", "-1.5"),
            (0.1, "0.1", "0.1", "0.1"),
            (1e-4, "0.0001", "0.0001", "0.0001"),
            (1e-5, "1e-05", "0.00001", "1e-05"),
            (1.5e-7, "1.5e-07", "1.5e-7", "1.5e-07"),
            (2.5e-10, "2.5e-10", "2.5e-10", "2.5e-10"),
            (5e-324, "5e-324", "5e-324", "5e-324"),
            (1e16, "1e+16", "10000000000000000", "10000000000000000"),
            (
                1152921504606846976.0,
                "1.152921504606847e+18",
                "1152921504606847000",
                "1152921504606846976",
            ),
            (1e21, "1e+21", "1e+21", "1000000000000000000000"),
            (123456.789, "123456.789", "123456.789", "123456.789"),
        ];
        for (v, repr, js, sdk) in cases {
            assert_eq!(python_repr(v), repr, "repr({v:e})");
            assert_eq!(javascript(v), js, "String({v:e})");
            assert_eq!(python_sdk(v), sdk, "sdk({v:e})");
        }
    }

    #[test]
    fn extreme_expansions_are_exact() {
        for v in [
            f64::MIN_POSITIVE,
            f64::MIN_POSITIVE - 5e-324,
            5e-324,
            f64::MAX,
        ] {
            let (digits, _) = exact_expansion(v, sci_exponent(&format!("{v:e}")));
            let longer = format!("{v:.1200e}");
            let all: String = longer
                .split('e')
                .next()
                .unwrap_or_default()
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            assert_eq!(all.trim_end_matches('0'), digits, "{v:e}");
        }
    }
}
