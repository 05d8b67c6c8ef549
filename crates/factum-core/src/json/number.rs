//! JSON numbers as exact decimals: parsing their text, telling whether an `f64` holds one
//! exactly, and the serde helpers exact-number types (money) build on.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The key of the marker object that stands for a number no `f64` holds.
pub const NUMBER_MARKER: &str = "$factum::number";

/// A decimal number in normal form: `(-1)^negative × digits × 10^exponent`, where `digits`
/// has neither leading nor trailing zeros (it is empty for zero, which is never negative).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decimal {
    /// Whether the number is below zero.
    pub negative: bool,
    /// The significant digits (ASCII), empty for zero.
    pub digits: String,
    /// The power of ten `digits` is multiplied by.
    pub exponent: i64,
}

/// An exponent this large (in either direction) is beyond any value anyone stores; it keeps
/// the arithmetic below in range for any input text.
const EXPONENT_BOUND: i64 = 1 << 40;

impl Decimal {
    /// Parses the text of a JSON number (`-?int(.frac)?([eE][+-]?digits)?`); `None` when it
    /// is not one. Exact whatever the number of digits; exponents are clamped to ±2^40.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let (negative, rest) = match bytes.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, bytes),
        };
        let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (int, rest) = rest.split_at(int_len);
        if int.is_empty() || (int.len() > 1 && int[0] == b'0') {
            return None;
        }
        let (frac, rest) = match rest.split_first() {
            Some((b'.', rest)) => {
                let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                if len == 0 {
                    return None;
                }
                rest.split_at(len)
            }
            _ => (&rest[..0], rest),
        };
        let written_exponent = match rest.split_first() {
            None => 0,
            Some((b'e' | b'E', rest)) => {
                let (sign, digits) = match rest.split_first() {
                    Some((b'-', digits)) => (-1, digits),
                    Some((b'+', digits)) => (1, digits),
                    _ => (1, rest),
                };
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                let magnitude = digits.iter().fold(0i64, |acc, d| {
                    (acc * 10 + i64::from(d - b'0')).min(EXPONENT_BOUND)
                });
                sign * magnitude
            }
            Some(_) => return None,
        };
        let all: Vec<u8> = int.iter().chain(frac).copied().collect();
        let first = all.iter().position(|&d| d != b'0');
        let Some(first) = first else {
            return Some(Self::zero());
        };
        let last = all.iter().rposition(|&d| d != b'0').unwrap_or(first);
        let digits = String::from_utf8_lossy(&all[first..=last]).into_owned();
        // The value is all × 10^(written - frac.len()); dropping `trailing` zeros raises it.
        let trailing = (all.len() - 1 - last) as i64;
        let exponent = written_exponent - frac.len() as i64 + trailing;
        Some(Self {
            negative,
            digits,
            exponent,
        })
    }

    /// Zero.
    pub fn zero() -> Self {
        Self {
            negative: false,
            digits: String::new(),
            exponent: 0,
        }
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// How many digits sit right of the decimal point (0 for an integer).
    pub fn scale(&self) -> u64 {
        if self.exponent >= 0 {
            0
        } else {
            self.exponent.unsigned_abs()
        }
    }

    /// The value times `10^shift` as an integer, when it is one and fits an `i128`.
    pub fn scaled_integer(&self, shift: u32) -> Option<i128> {
        if self.is_zero() {
            return Some(0);
        }
        let exponent = self.exponent.checked_add(i64::from(shift))?;
        if exponent < 0 {
            return None;
        }
        let total = self.digits.len() as i64 + exponent;
        if total > 38 {
            return None;
        }
        let mut value: i128 = self.digits.parse().ok()?;
        for _ in 0..exponent {
            value = value.checked_mul(10)?;
        }
        Some(if self.negative { -value } else { value })
    }
}

/// The shortest decimal text that reads back as `v` (Rust's `Display`: never an exponent),
/// or `None` for an infinity or NaN, which JSON cannot hold.
pub fn f64_text(v: f64) -> Option<String> {
    v.is_finite().then(|| format!("{v}"))
}

/// Whether the `f64` serde_json reads for `text` stands for exactly the decimal `text` says,
/// in the sense that matters: its shortest decimal text is that decimal.
pub(crate) fn f64_keeps(text: &str, v: f64) -> bool {
    match (
        Decimal::parse(text),
        f64_text(v).as_deref().and_then(Decimal::parse),
    ) {
        (Some(written), Some(read)) => written == read,
        _ => false,
    }
}

/// Reads what a map holds when it is the exact-number marker `{"$factum::number": "<text>"}`
/// that [`from_str`](crate::json::from_str) puts where an `f64` would lose digits; `None` (the map
/// consumed) for any other map. For the `visit_map` of an exact-number visitor.
pub fn number_in_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<String>, A::Error> {
    let Some(key) = map.next_key::<String>()? else {
        return Ok(None);
    };
    if key != NUMBER_MARKER {
        map.next_value::<de::IgnoredAny>()?;
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        return Ok(None);
    }
    let text = map.next_value::<String>()?;
    if map.next_key::<de::IgnoredAny>()?.is_some() {
        return Err(de::Error::custom(
            "an exact number marker with more than one entry",
        ));
    }
    match Decimal::parse(&text) {
        Some(_) => Ok(Some(text)),
        None => Err(de::Error::custom(format_args!(
            "an exact number marker holding {text:?}, which is not a JSON number"
        ))),
    }
}

/// Writes `text`, the text of a JSON number, as that number, digit for digit. With
/// serde_json's serializer (`to_string`, `to_vec`, axum's `Json`) the text is written raw;
/// other serializers see a number (`serde_json::to_value` an `f64`: avoid it for exact
/// values). Text that is not a JSON number is an error, never written.
pub fn serialize_number<S: Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    if Decimal::parse(text).is_none() {
        return Err(serde::ser::Error::custom(format_args!(
            "{text:?} is not a JSON number"
        )));
    }
    let raw = serde_json::value::RawValue::from_string(text.to_owned())
        .map_err(serde::ser::Error::custom)?;
    raw.serialize(serializer)
}

/// The exact text of a JSON number, as read and written by serde. Reads integers, floats
/// (exact by the argument in [`super`]) and the marker of numbers no `f64` holds; writes the
/// text back as a number, digit for digit.
///
/// ```
/// use factum_core::json::{self, ExactNumber};
/// let n: ExactNumber = json::from_str("999999999999999.99").unwrap();
/// assert_eq!(n.as_str(), "999999999999999.99");
/// assert_eq!(serde_json::to_string(&n).unwrap(), "999999999999999.99");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExactNumber(String);

impl ExactNumber {
    /// The number `text` stands for, if it is the text of a JSON number.
    pub fn parse(text: &str) -> Option<Self> {
        Decimal::parse(text).map(|_| Self(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as a normal-form decimal.
    pub fn decimal(&self) -> Decimal {
        Decimal::parse(&self.0).unwrap_or_else(Decimal::zero)
    }
}

impl fmt::Display for ExactNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ExactNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_number(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for ExactNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ExactNumberVisitor)
    }
}

/// The visitor of [`ExactNumber`]: any JSON number, as its exact text.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExactNumberVisitor;

impl<'de> Visitor<'de> for ExactNumberVisitor {
    type Value = ExactNumber;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ExactNumber, E> {
        Ok(ExactNumber(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ExactNumber, E> {
        Ok(ExactNumber(v.to_string()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<ExactNumber, E> {
        Ok(ExactNumber(v.to_string()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<ExactNumber, E> {
        Ok(ExactNumber(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ExactNumber, E> {
        f64_text(v)
            .map(ExactNumber)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ExactNumber, A::Error> {
        match number_in_map(map)? {
            Some(text) => Ok(ExactNumber(text)),
            None => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    #[test]
    fn decimals_take_their_normal_form() {
        assert_eq!(d("1000.0"), d("1e3"));
        assert_eq!(d("1000.0").digits, "1");
        assert_eq!(d("1000.0").exponent, 3);
        assert_eq!(d("0.30").digits, "3");
        assert_eq!(d("0.30").exponent, -1);
        assert_eq!(d("-0.0"), Decimal::zero());
        assert_eq!(d("0e99"), Decimal::zero());
        assert_eq!(d("12.5E-1"), d("1.25"));
        assert!(d("-7").negative);
        assert_eq!(d("1e99999999999999999999999").exponent, EXPONENT_BOUND);
        for bad in [
            "", "-", "01", "1.", ".5", "1e", "1e+", "+1", "1x", "0x10", " 1", "NaN",
        ] {
            assert_eq!(Decimal::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn scaled_integers_are_exact_or_absent() {
        assert_eq!(
            d("999999999999999.99").scaled_integer(2),
            Some(99_999_999_999_999_999)
        );
        assert_eq!(d("1e15").scaled_integer(2), Some(100_000_000_000_000_000));
        assert_eq!(d("0.001").scaled_integer(2), None);
        assert_eq!(d("-0.07").scaled_integer(2), Some(-7));
        assert_eq!(d("1e40").scaled_integer(2), None);
        assert_eq!(d("0").scaled_integer(2), Some(0));
    }

    #[test]
    fn f64_keeps_only_what_reads_back() {
        assert!(f64_keeps("0.1", 0.1));
        assert!(f64_keeps("1000.0", 1000.0));
        assert!(f64_keeps("0.30000000000000004", 0.1 + 0.2));
        assert!(!f64_keeps("999999999999999.99", 999_999_999_999_999.99));
        assert!(!f64_keeps("1.0000000000000000000001", 1.0));
    }

    #[test]
    fn serialize_number_refuses_what_is_not_a_number() {
        assert_eq!(
            serde_json::to_string(&ExactNumber::parse("1.50").unwrap()).unwrap(),
            "1.50"
        );
        assert_eq!(ExactNumber::parse("{}"), None);
        let mut out = Vec::new();
        let err = serialize_number("1,2", &mut serde_json::Serializer::new(&mut out));
        assert!(err.is_err());
    }
}
