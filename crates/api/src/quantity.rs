//! Resource quantities (`500m`, `1.5Gi`, `129e6`) with the semantics of apimachinery's `resource.Quantity`
//! (`pkg/api/resource/quantity.go`): the same accepted grammar and error texts, rounding up to nano precision on
//! parse, the same canonical string form, `Value()`/`MilliValue()` rounding, comparison and addition.
//!
//! Owns only the arithmetic and text of quantities; which resources may hold which quantities is validation's job.
//!
//! A quantity is held exactly as `mantissa × 10^exponent` (an `i128` and an `i32`), which covers every value Kubernetes
//! accepts in practice; values whose digits do not fit 38 decimal places are refused as non-numeric, where Go would
//! fall back to arbitrary precision.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// The grammar quoted in Kubernetes' format error (`splitREString` in `quantity.go`).
pub const QUANTITY_REGEX: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

/// Parsed values are rounded up to this power of ten (`Nano` scale in `quantity.go`'s `ParseQuantity`).
const NANO_EXPONENT: i32 = -9;

/// Binary-SI values are capped at the largest int64 (`maxAllowed` in `quantity.go`).
const MAX_BINARY_SI: i128 = i64::MAX as i128;

/// Fast-path precision budget of `ParseQuantity` (`maxInt64Factors` in `quantity.go`): decimal inputs with at most
/// this many digits keep the caller's spelling when it is already canonical.
const MAX_INT64_FACTORS: i32 = 18;

/// How a quantity prints (`resource.Format`): with a decimal SI suffix, a binary SI suffix, or an `e` exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `1e3`, `12e-3`.
    DecimalExponent,
    /// `1Ki`, `5Gi`.
    BinarySI,
    /// `500m`, `1k`, `2G`.
    DecimalSI,
}

/// Why a string is not a quantity, in apimachinery's words (`ErrFormatWrong`, `ErrNumeric`, `ErrSuffix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    FormatWrong,
    #[error("unable to parse quantity's numeric value")]
    Numeric,
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// A Kubernetes resource quantity. Equality and ordering compare the numeric value only (as Go's `Cmp`), never
/// the format: `1Gi == 1073741824`.
#[derive(Debug, Clone)]
pub struct Quantity {
    /// Significant digits, with no trailing zeros (zero is `0 × 10^0`).
    mantissa: i128,
    /// Power of ten the mantissa is multiplied by; never below -9 after parsing.
    exponent: i32,
    /// The preferred print format.
    format: Format,
    /// The caller's own spelling, kept when Go's parser keeps it (already canonical input on its fast path).
    original: Option<String>,
}

/// The pieces `parseQuantityString` splits a quantity into.
struct Split<'a> {
    positive: bool,
    /// Integer digits with leading zeros removed (`"0"` when none).
    num: &'a str,
    /// Fraction digits (may be empty).
    denom: &'a str,
    suffix: &'a str,
}

/// Splits `s` as apimachinery's `parseQuantityString` does, including its leniencies (`1.`, `.5`, `1.G`).
fn split(s: &str) -> Result<Split<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(Split {
            positive,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = if pos == num_start { "0" } else { &s[num_start..pos] };
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let d_start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[d_start..pos];
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::FormatWrong);
    }
    Ok(Split {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

/// Interprets a suffix as apimachinery's `suffixHandler.interpret`: `(base, exponent, format)`.
fn interpret_suffix(suffix: &str) -> Option<(u32, i32, Format)> {
    let decimal = |e| Some((10, e, Format::DecimalSI));
    let binary = |e| Some((2, e, Format::BinarySI));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            // Go's strconv.ParseInt accepts a leading sign and nothing else but digits.
            let e: i64 = s[1..].parse().ok()?;
            let e = i32::try_from(e).ok()?;
            Some((10, e, Format::DecimalExponent))
        }
        _ => None,
    }
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// Divides `m` by `10^shift`, rounding away from zero when inexact (inf.Dec's `RoundUp`).
fn div_pow10_round_up(m: i128, shift: u32) -> (i128, bool) {
    match pow10(shift) {
        Some(d) => {
            let q = m / d;
            if m % d == 0 {
                (q, true)
            } else {
                (q + m.signum(), false)
            }
        }
        // More than 38 places: any non-zero value rounds to one unit.
        None => (m.signum(), m == 0),
    }
}

/// Strips factors of ten from a mantissa into the exponent.
fn normalize(mut mantissa: i128, mut exponent: i32) -> (i128, i32) {
    if mantissa == 0 {
        return (0, 0);
    }
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exponent += 1;
    }
    (mantissa, exponent)
}

/// The decimal SI suffix for a power of ten that is a multiple of three, if Kubernetes has one.
fn decimal_suffix(exponent: i32) -> Option<&'static str> {
    Some(match exponent {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => return None,
    })
}

const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

impl Quantity {
    /// Parses a quantity as `resource.ParseQuantity` does.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::FormatWrong);
        }
        if s == "0" {
            return Ok(Self::zero(Format::DecimalSI));
        }
        let parts = split(s)?;
        let (base, suffix_exp, format) = interpret_suffix(parts.suffix).ok_or(QuantityError::Suffix)?;

        let original = Self::fast_path_spelling(s, &parts, base, suffix_exp, format);

        let digits = format!("{}{}", parts.num, parts.denom);
        let digits = digits.trim_start_matches('0');
        if digits.is_empty() {
            return Ok(Self::zero(format));
        }
        // Trailing zeros go to the exponent so that long round numbers still fit.
        let trimmed = digits.trim_end_matches('0');
        let zeros = (digits.len() - trimmed.len()) as i32;
        let mantissa: i128 = trimmed.parse().map_err(|_| QuantityError::Numeric)?;
        let exponent = zeros - parts.denom.len() as i32;
        Self::finish(parts.positive, mantissa, exponent, base, suffix_exp, format, original)
    }

    /// Applies the suffix, Go's nano round-up, the binary cap and format fix-ups to a parsed number.
    fn finish(
        positive: bool,
        mut mantissa: i128,
        mut exponent: i32,
        base: u32,
        suffix_exp: i32,
        mut format: Format,
        original: Option<String>,
    ) -> Result<Self, QuantityError> {
        if base == 10 {
            exponent = exponent.checked_add(suffix_exp).ok_or(QuantityError::Numeric)?;
        } else {
            let factor = 1i128.checked_shl(suffix_exp as u32).ok_or(QuantityError::Numeric)?;
            mantissa = mantissa.checked_mul(factor).ok_or(QuantityError::Numeric)?;
        }
        if exponent < NANO_EXPONENT {
            let (m, _) = div_pow10_round_up(mantissa, (NANO_EXPONENT - exponent) as u32);
            mantissa = m;
            exponent = NANO_EXPONENT;
        }
        let (mut mantissa, mut exponent) = normalize(mantissa, exponent);
        if format == Format::BinarySI {
            let probe = Quantity {
                mantissa,
                exponent,
                format,
                original: None,
            };
            if probe.cmp_abs(&Quantity::new(i64::MAX, 0, format)) == Ordering::Greater {
                (mantissa, exponent) = normalize(MAX_BINARY_SI, 0);
            } else if probe.cmp_abs(&Quantity::new(1, 0, format)) == Ordering::Less {
                // Between zero and one: print as decimal rather than round (quantity.go does the same).
                format = Format::DecimalSI;
            }
        }
        if !positive {
            mantissa = -mantissa;
        }
        Ok(Self {
            mantissa,
            exponent,
            format,
            original,
        })
    }

    /// The caller's spelling when Go's fast path would keep it as the quantity's string (already canonical input).
    fn fast_path_spelling(s: &str, parts: &Split<'_>, base: u32, suffix_exp: i32, format: Format) -> Option<String> {
        let shifted = format!("{}{}", parts.num, parts.denom);
        match format {
            Format::DecimalExponent | Format::DecimalSI => {
                let precision = MAX_INT64_FACTORS - (parts.num.len() + parts.denom.len()) as i32;
                let scale = suffix_exp - parts.denom.len() as i32;
                let keep = precision >= 0
                    && scale >= NANO_EXPONENT
                    && scale % 3 == 0
                    && !shifted.ends_with("000")
                    && !shifted.starts_with('0');
                keep.then(|| s.to_string())
            }
            Format::BinarySI => {
                if !parts.denom.is_empty() || base != 2 {
                    return None;
                }
                // `exponent*3/10` evaluated in float32 and truncated, as Go does.
                let precision = 15 - parts.num.len() as i32 - (suffix_exp * 3 / 10) - 1;
                let value: i64 = shifted.parse().ok()?;
                let fits = value.checked_mul(1i64.checked_shl(suffix_exp as u32)?).is_some();
                let keep = precision >= 0 && fits && suffix_exp % 10 == 0 && value & 0x07 != 0;
                keep.then(|| s.to_string())
            }
        }
    }

    /// Zero in the given format.
    pub fn zero(format: Format) -> Self {
        Self {
            mantissa: 0,
            exponent: 0,
            format,
            original: None,
        }
    }

    /// `value × 10^exponent`, printed in `format`.
    pub fn new(value: i64, exponent: i32, format: Format) -> Self {
        let (mantissa, exponent) = normalize(value as i128, exponent);
        Self {
            mantissa,
            exponent,
            format,
            original: None,
        }
    }

    /// The preferred print format.
    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// -1, 0 or 1 (`Sign()`).
    pub fn sign(&self) -> i32 {
        self.mantissa.signum() as i32
    }

    /// The value rounded up to an integer at 10^`scale` (`ScaledValue`), saturating at the int64 bounds.
    /// Positive remainders round up; negative ones away from zero (inf.Dec's `RoundUp`).
    pub fn scaled_value(&self, scale: i32) -> i64 {
        let shift = i64::from(self.exponent) - i64::from(scale);
        let v = if shift >= 0 {
            match u32::try_from(shift)
                .ok()
                .and_then(pow10)
                .and_then(|p| self.mantissa.checked_mul(p))
            {
                Some(v) => v,
                None => return if self.mantissa < 0 { i64::MIN } else { i64::MAX },
            }
        } else {
            div_pow10_round_up(self.mantissa, u32::try_from(-shift).unwrap_or(u32::MAX)).0
        };
        i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
    }

    /// The value rounded up to an integer (`Value()`): `1500m` → 2.
    pub fn value(&self) -> i64 {
        self.scaled_value(0)
    }

    /// The value in thousandths, rounded up (`MilliValue()`): `1.5` → 1500.
    pub fn milli_value(&self) -> i64 {
        self.scaled_value(-3)
    }

    /// Rounds up to a multiple of 10^`scale` (`RoundUp`), returning whether the value was already exact.
    pub fn round_up(&mut self, scale: i32) -> bool {
        if self.exponent >= scale {
            return true;
        }
        let (m, exact) = div_pow10_round_up(self.mantissa, (scale - self.exponent) as u32);
        let (m, e) = normalize(m, scale);
        self.mantissa = m;
        self.exponent = e;
        self.original = None;
        exact
    }

    /// The sum (`Add`). Keeps this quantity's format unless it is zero, as Go does; saturates where `i128`
    /// cannot hold the exact sum.
    pub fn add(&self, other: &Quantity) -> Quantity {
        let format = if self.is_zero() { other.format } else { self.format };
        let e = self.exponent.min(other.exponent);
        let scale = |q: &Quantity| {
            pow10((q.exponent - e) as u32)
                .and_then(|p| q.mantissa.checked_mul(p))
                .unwrap_or(if q.mantissa < 0 { i128::MIN / 2 } else { i128::MAX / 2 })
        };
        let (mantissa, exponent) = normalize(scale(self).saturating_add(scale(other)), e);
        Quantity {
            mantissa,
            exponent,
            format,
            original: None,
        }
    }

    /// The negation (`Neg`).
    pub fn neg(&self) -> Quantity {
        Quantity {
            mantissa: -self.mantissa,
            exponent: self.exponent,
            format: self.format,
            original: None,
        }
    }

    /// Decimal digits of the absolute mantissa.
    fn digits(&self) -> String {
        self.mantissa.unsigned_abs().to_string()
    }

    /// Compares magnitudes exactly, whatever the exponents.
    fn cmp_abs(&self, other: &Quantity) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let (a, b) = (self.digits(), other.digits());
        let order_a = a.len() as i64 + i64::from(self.exponent);
        let order_b = b.len() as i64 + i64::from(other.exponent);
        order_a.cmp(&order_b).then_with(|| {
            let n = a.len().max(b.len());
            format!("{a:0<n$}").cmp(&format!("{b:0<n$}"))
        })
    }

    /// The canonical text as Go's `CanonicalizeBytes` builds it, ignoring any kept spelling.
    fn canonical(&self) -> String {
        if self.is_zero() {
            return "0".to_string();
        }
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let mut format = self.format;
        if format == Format::BinarySI {
            let small = self.cmp_abs(&Quantity::new(1024, 0, format)) == Ordering::Less;
            if small || self.exponent < 0 {
                format = Format::DecimalSI;
            } else if let Some(mut v) = pow10(self.exponent as u32).and_then(|p| self.mantissa.checked_mul(p)) {
                let mut power = 0;
                while v % 1024 == 0 && power + 1 < BINARY_SUFFIXES.len() {
                    v /= 1024;
                    power += 1;
                }
                return format!("{v}{}", BINARY_SUFFIXES[power]);
            } else {
                format = Format::DecimalSI;
            }
        }
        // Lower the exponent to a multiple of three, moving zeros into the digits.
        let mut digits = self.digits();
        let mut e = self.exponent;
        while e.rem_euclid(3) != 0 {
            digits.push('0');
            e -= 1;
        }
        match format {
            Format::DecimalExponent if e == 0 => format!("{sign}{digits}"),
            Format::DecimalExponent => format!("{sign}{digits}e{e}"),
            _ => {
                // Go has no suffix past exa and would drop the exponent; Peapod keeps the value: `1000E`.
                while e > 18 {
                    digits.push_str("000");
                    e -= 3;
                }
                let suffix = decimal_suffix(e).unwrap_or("");
                format!("{sign}{digits}{suffix}")
            }
        }
    }
}

impl fmt::Display for Quantity {
    /// The canonical form (`String()`): `1000m` → `1`, `0.5` → `500m`, `1536Mi` stays, `129e6` stays.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.original {
            Some(s) => f.write_str(s),
            None => f.write_str(&self.canonical()),
        }
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    /// Numeric comparison (`Cmp`).
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.sign(), other.sign()) {
            (a, b) if a != b => a.cmp(&b),
            (-1, _) => other.cmp_abs(self),
            _ => self.cmp_abs(other),
        }
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;
    fn add(self, rhs: Quantity) -> Quantity {
        Quantity::add(&self, &rhs)
    }
}

impl Default for Quantity {
    fn default() -> Self {
        Self::zero(Format::DecimalSI)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Quantity {
    /// Accepts a string, or a bare JSON number as Go's `UnmarshalJSON` does.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity string such as \"500m\" or \"1Gi\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Quantity::parse(v.trim()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// Parse cases from apimachinery's quantity_test.go (`TestQuantityParse`), as (input, value, exponent, format).
    #[test]
    fn parse_matches_go_table() {
        use Format::*;
        let cases: &[(&str, i64, i32, Format)] = &[
            ("0", 0, 0, DecimalSI),
            ("0n", 0, 0, DecimalSI),
            ("0u", 0, 0, DecimalSI),
            ("0m", 0, 0, DecimalSI),
            ("0Ki", 0, 0, BinarySI),
            ("0k", 0, 0, DecimalSI),
            ("0Mi", 0, 0, BinarySI),
            ("0e0", 0, 0, DecimalExponent),
            ("1Ki", 1024, 0, BinarySI),
            ("8Ki", 8 * 1024, 0, BinarySI),
            ("7Mi", 7 * 1024 * 1024, 0, BinarySI),
            ("6Gi", 6 * 1024 * 1024 * 1024, 0, BinarySI),
            ("5Ti", 5 * (1 << 40), 0, BinarySI),
            ("4Pi", 4 * (1 << 50), 0, BinarySI),
            ("3Ei", 3 * (1 << 60), 0, BinarySI),
            ("10Ti", 10 * (1 << 40), 0, BinarySI),
            ("100Ti", 100 * (1 << 40), 0, BinarySI),
            ("5n", 5, -9, DecimalSI),
            ("4u", 4, -6, DecimalSI),
            ("3m", 3, -3, DecimalSI),
            ("9", 9, 0, DecimalSI),
            ("8k", 8, 3, DecimalSI),
            ("50k", 5, 4, DecimalSI),
            ("7M", 7, 6, DecimalSI),
            ("6G", 6, 9, DecimalSI),
            ("5T", 5, 12, DecimalSI),
            ("40T", 4, 13, DecimalSI),
            ("300T", 3, 14, DecimalSI),
            ("2P", 2, 15, DecimalSI),
            ("1E", 1, 18, DecimalSI),
            ("1E-3", 1, -3, DecimalExponent),
            ("1e14", 1, 14, DecimalExponent),
            ("1e13", 1, 13, DecimalExponent),
            ("1e3", 1, 3, DecimalExponent),
            ("100.035k", 100035, 0, DecimalSI),
            ("0.001", 1, -3, DecimalSI),
            ("0.0005k", 5, -1, DecimalSI),
            ("0.005", 5, -3, DecimalSI),
            ("0.05", 5, -2, DecimalSI),
            ("0.5", 5, -1, DecimalSI),
            ("0.00050k", 5, -1, DecimalSI),
            ("0.00500", 5, -3, DecimalSI),
            ("0.5e0", 5, -1, DecimalExponent),
            ("0.5e-1", 5, -2, DecimalExponent),
            ("0.5e-2", 5, -3, DecimalExponent),
            ("10.035M", 10035, 3, DecimalSI),
            ("1.2e3", 12, 2, DecimalExponent),
            ("1.3E+6", 13, 5, DecimalExponent),
            ("1.40e9", 14, 8, DecimalExponent),
            ("1.53E12", 153, 10, DecimalExponent),
            ("1.6e15", 16, 14, DecimalExponent),
            ("1.7E18", 17, 17, DecimalExponent),
            ("9.01", 901, -2, DecimalSI),
            ("8.1k", 81, 2, DecimalSI),
            ("7.123456M", 7123456, 0, DecimalSI),
            ("6.987654321G", 6987654321, 0, DecimalSI),
            ("5.444T", 5444, 9, DecimalSI),
            ("40.1T", 401, 11, DecimalSI),
            ("53.3P", 533, 14, DecimalSI),
            ("6.4E", 64, 17, DecimalSI),
            ("3.001n", 4, -9, DecimalSI),
            ("1.1E-9", 2, -9, DecimalExponent),
            ("0.0000000001", 1, -9, DecimalSI),
            ("0.0000000005", 1, -9, DecimalSI),
            ("0.00000000050", 1, -9, DecimalSI),
            ("0.5e-9", 1, -9, DecimalExponent),
            ("0.9n", 1, -9, DecimalSI),
            ("0.00000012345", 124, -9, DecimalSI),
            ("0.00000012354", 124, -9, DecimalSI),
            ("9Ei", i64::MAX, 0, BinarySI),
            ("9223372036854775807Ki", i64::MAX, 0, BinarySI),
            ("12E", 12, 18, DecimalSI),
            ("100.035Ki", 10243584, -2, BinarySI),
            ("0.5Mi", 512 * 1024, 0, BinarySI),
            ("0.05Gi", 536870912, -1, BinarySI),
            ("0.025Ti", 274877906944, -1, BinarySI),
            ("0.000000000001Ki", 2, -9, DecimalSI),
            (".001", 1, -3, DecimalSI),
            (".0001k", 100, -3, DecimalSI),
            ("1.", 1, 0, DecimalSI),
            ("1.G", 1, 9, DecimalSI),
        ];
        for &(input, value, exp, format) in cases {
            let got = q(input);
            assert_eq!(got, Quantity::new(value, exp, format), "{input}");
            assert_eq!(got.format(), format, "{input} format");
            let neg = q(&format!("-{input}"));
            assert_eq!(neg, Quantity::new(value, exp, format).neg(), "-{input}");
            let plus = q(&format!("+{input}"));
            assert_eq!(plus, got, "+{input}");
        }
    }

    #[test]
    fn invalid_inputs_use_kubernetes_messages() {
        for bad in [
            "1.1.M", "1+1.0M", "0.1mi", "0.1am", "aoeu", ".5i", "1i", "-3.01i", "-3.01e-", " 1", "1 ", "",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(
            Quantity::parse("aoeu").unwrap_err().to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
        assert_eq!(
            Quantity::parse("1i").unwrap_err().to_string(),
            "unable to parse quantity's suffix"
        );
        assert_eq!(Quantity::parse("0.1mi").unwrap_err(), QuantityError::Suffix);
        assert_eq!(Quantity::parse("1 ").unwrap_err(), QuantityError::FormatWrong);
        assert_eq!(
            QuantityError::Numeric.to_string(),
            "unable to parse quantity's numeric value"
        );
        assert!(QuantityError::FormatWrong.to_string().contains(QUANTITY_REGEX));
    }

    /// Canonical strings from quantity_test.go (`TestQuantityString`).
    #[test]
    fn canonical_strings_match_go_table() {
        use Format::*;
        let cases: &[(i64, i32, Format, &str)] = &[
            (1024 * 1024 * 1024, 0, BinarySI, "1Gi"),
            (300 * 1024 * 1024, 0, BinarySI, "300Mi"),
            (6 * 1024, 0, BinarySI, "6Ki"),
            (1001 * 1024 * 1024 * 1024, 0, BinarySI, "1001Gi"),
            (1024 * 1024 * 1024 * 1024, 0, BinarySI, "1Ti"),
            (5, 0, BinarySI, "5"),
            (500, -3, BinarySI, "500m"),
            (1, 9, DecimalSI, "1G"),
            (1000, 6, DecimalSI, "1G"),
            (1000000, 3, DecimalSI, "1G"),
            (1000000000, 0, DecimalSI, "1G"),
            (1, -3, DecimalSI, "1m"),
            (80, -3, DecimalSI, "80m"),
            (1080, -3, DecimalSI, "1080m"),
            (108, -2, DecimalSI, "1080m"),
            (10800, -4, DecimalSI, "1080m"),
            (300, 6, DecimalSI, "300M"),
            (1, 12, DecimalSI, "1T"),
            (1234567, 6, DecimalSI, "1234567M"),
            (1234567, -3, BinarySI, "1234567m"),
            (3, 3, DecimalSI, "3k"),
            (1025, 0, BinarySI, "1025"),
            (0, 0, DecimalSI, "0"),
            (0, 0, BinarySI, "0"),
            (1, 9, DecimalExponent, "1e9"),
            (1, -3, DecimalExponent, "1e-3"),
            (1, -9, DecimalExponent, "1e-9"),
            (80, -3, DecimalExponent, "80e-3"),
            (300, 6, DecimalExponent, "300e6"),
            (1, 12, DecimalExponent, "1e12"),
            (1, 3, DecimalExponent, "1e3"),
            (3, 3, DecimalExponent, "3e3"),
            (0, 0, DecimalExponent, "0"),
            (1, -9, DecimalSI, "1n"),
            (80, -9, DecimalSI, "80n"),
            (1080, -9, DecimalSI, "1080n"),
            (108, -8, DecimalSI, "1080n"),
            (1, -6, DecimalSI, "1u"),
            (80, -6, DecimalSI, "80u"),
            (1080, -6, DecimalSI, "1080u"),
        ];
        for &(v, e, f, want) in cases {
            let got = Quantity::new(v, e, f);
            assert_eq!(got.to_string(), want, "{v}e{e} {f:?}");
            // The canonical form parses back to the same value.
            assert_eq!(q(want), got, "reparse {want}");
            if v != 0 {
                assert_eq!(got.neg().to_string(), format!("-{want}"));
            }
        }
    }

    #[test]
    fn parse_then_print_round_trips_like_go() {
        for (input, want) in [
            ("1000m", "1"),
            ("0.5", "500m"),
            ("129e6", "129e6"),
            ("129M", "129M"),
            ("1536Mi", "1536Mi"),
            ("1.5Gi", "1536Mi"),
            ("1024Mi", "1Gi"),
            ("1k", "1k"),
            ("0.1", "100m"),
            ("100m", "100m"),
            ("1.1Ki", "1126400m"),
            ("1E3", "1E3"),
            ("1000", "1k"),
            ("1500m", "1500m"),
            ("2000Mi", "2000Mi"),
            ("1025Ki", "1025Ki"),
            ("512Ki", "512Ki"),
            ("0.5Gi", "512Mi"),
            ("128974848", "128974848"),
            ("-1", "-1"),
            ("000", "0"),
            ("1000E", "1000E"),
        ] {
            assert_eq!(q(input).to_string(), want, "{input}");
        }
    }

    #[test]
    fn value_and_milli_value_round_up() {
        assert_eq!(q("1500m").value(), 2);
        assert_eq!(q("1").value(), 1);
        assert_eq!(q("1.001").value(), 2);
        assert_eq!(q("1Ki").value(), 1024);
        assert_eq!(q("1.5").milli_value(), 1500);
        assert_eq!(q("1n").milli_value(), 1);
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("1Gi").milli_value(), 1073741824000);
        assert_eq!(q("1e100").value(), i64::MAX);
        assert_eq!(q("-1500m").value(), -2);
        assert_eq!(q("0").value(), 0);
    }

    #[test]
    fn comparison_is_numeric() {
        assert_eq!(q("1Gi"), q("1073741824"));
        assert_eq!(q("1"), q("1000m"));
        assert!(q("500m") < q("1"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("-1") < q("0"));
        assert!(q("-2") < q("-1"));
        assert!(q("1e100") > q("9Ei"));
        assert!(q("1n") > q("0"));
        assert_eq!(q("100M").cmp(&q("0.1G")), Ordering::Equal);
        let mut v = [q("2"), q("100m"), q("1Ki"), q("-5")];
        v.sort();
        let printed: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        assert_eq!(printed, ["-5", "100m", "2", "1Ki"]);
    }

    #[test]
    fn addition_is_exact_and_keeps_format() {
        assert_eq!((q("100m") + q("900m")).to_string(), "1");
        assert_eq!((q("1Gi") + q("1Gi")).to_string(), "2Gi");
        assert_eq!((q("0") + q("1Mi")).to_string(), "1Mi");
        assert_eq!((q("1") + q("-1")).to_string(), "0");
        assert_eq!((q("1k") + q("1m")).to_string(), "1000001m");
        assert_eq!(q("1e3").add(&q("1")).to_string(), "1001");
    }

    #[test]
    fn round_up_to_milli() {
        let mut x = q("0.0001");
        assert!(!x.round_up(-3));
        assert_eq!(x.to_string(), "1m");
        let mut y = q("250m");
        assert!(y.round_up(-3));
        assert_eq!(y.to_string(), "250m");
    }

    #[test]
    fn serde_as_string_and_number() {
        let v: Quantity = serde_json::from_str("\"0.5\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"500m\"");
        let n: Quantity = serde_json::from_str("2").unwrap();
        assert_eq!(n.to_string(), "2");
        let f: Quantity = serde_json::from_str("0.25").unwrap();
        assert_eq!(f.to_string(), "250m");
        let err = serde_json::from_str::<Quantity>("\"abc\"").unwrap_err().to_string();
        assert!(err.contains("quantities must match the regular expression"), "{err}");
    }

    #[test]
    fn generated_quantities_round_trip() {
        // Property: for many mantissas and every suffix, printing then parsing preserves the value, and printing is
        // idempotent.
        let suffixes = [
            "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "e3", "e-5",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..400 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let int = seed % 100_000;
            let frac = (seed >> 20) % 1000;
            for s in suffixes {
                let text = if frac.is_multiple_of(3) {
                    format!("{int}{s}")
                } else {
                    format!("{int}.{frac}{s}")
                };
                let a = q(&text);
                let printed = a.to_string();
                let b = q(&printed);
                assert_eq!(a, b, "{text} -> {printed}");
                assert_eq!(b.to_string(), printed, "idempotent {text}");
            }
        }
    }
}
