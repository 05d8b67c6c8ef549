//! Exact money: integer cents inside, JSON numbers outside.
//!
//! A JSON number reaches serde as an `f64` (or an integer). Rust prints an `f64` as the
//! shortest decimal that reads back to the same value, so `0.1` comes back as `"0.1"`; that
//! decimal text is parsed exactly into cents. No arithmetic is ever done in floating point.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The largest amount one command may carry: 10^15 units.
pub const MAX_AMOUNT: Money = Money(100_000_000_000_000_000);

/// An exact amount of money in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(0);

    /// An amount of cents.
    pub const fn from_cents(cents: i64) -> Self {
        Self(cents)
    }

    /// The amount in cents.
    pub const fn cents(self) -> i64 {
        self.0
    }

    /// The sum, or `None` on overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// The difference, or `None` on overflow.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    /// Whether the amount is above zero.
    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// The amount as a JSON-friendly float (exact for the decimal it stands for, as far as an
    /// `f64` can print it: below 2^53 cents).
    pub fn to_f64(self) -> f64 {
        // Division is correctly rounded, so 30 / 100 prints as 0.3.
        self.0 as f64 / 100.0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.to_f64())
    }
}

impl<'de> Deserialize<'de> for Money {
    /// Reads stored money (events, snapshots): a JSON number with at most two decimals. This
    /// runs for every event of every load, so it avoids text: `v` is exactly a two-decimal
    /// amount when `round(v * 100) / 100` gives `v` back (the division is correctly rounded,
    /// so this holds exactly for the nearest double of such an amount, and for no other).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MoneyVisitor)
    }
}

struct MoneyVisitor;

impl Visitor<'_> for MoneyVisitor {
    type Value = Money;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amount of money with at most 2 decimal places")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
        v.checked_mul(100)
            .map(Money)
            .ok_or_else(|| E::custom(AmountProblem::TooLarge))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
        i64::try_from(v)
            .map_err(|_| E::custom(AmountProblem::TooLarge))
            .and_then(|v| self.visit_i64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
        // i64::MAX cents, as a bound that keeps the cast below in range.
        const LIMIT: f64 = 9.2e16;
        if !v.is_finite() || v.abs() > LIMIT {
            return Err(E::custom(AmountProblem::TooLarge));
        }
        let cents = (v * 100.0).round();
        if cents / 100.0 != v {
            return Err(E::custom(AmountProblem::TooPrecise));
        }
        Ok(Money(cents as i64))
    }
}

/// An amount as a client sent it: any JSON value, judged by the domain.
///
/// Commands carry an `Amount` rather than [`Money`] so that a non-numeric, negative or too
/// precise amount is a domain error (`ACCOUNT_INVALID_AMOUNT`) with a clear message, not a
/// generic parse failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amount {
    /// A number, as exact decimal text (`"1000"`, `"0.1"`, `"-5"`).
    Number(String),
    /// Something that is not a number; holds what it was.
    NotANumber(&'static str),
}

/// Why an [`Amount`] is not valid money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountProblem {
    /// Not a JSON number.
    NotANumber,
    /// Below zero.
    Negative,
    /// More than two decimal places.
    TooPrecise,
    /// Above [`MAX_AMOUNT`].
    TooLarge,
}

impl fmt::Display for AmountProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotANumber => "amount must be a number",
            Self::Negative => "amount must not be negative",
            Self::TooPrecise => "amount must have at most 2 decimal places",
            Self::TooLarge => "amount must not be above 1e15",
        })
    }
}

impl Amount {
    /// The amount of a whole number of cents.
    pub fn from_cents(cents: i64) -> Self {
        Self::Number(Money::from_cents(cents).to_string())
    }

    /// Converts to money: a number, not negative, at most 2 decimals, at most 10^15.
    pub fn to_money(&self) -> Result<Money, AmountProblem> {
        let text = match self {
            Self::Number(text) => text.as_str(),
            Self::NotANumber(_) => return Err(AmountProblem::NotANumber),
        };
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let fraction = fraction.trim_end_matches('0');
        if whole.is_empty() && fraction.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(AmountProblem::NotANumber);
        }
        let whole = whole.trim_start_matches('0');
        let is_zero = whole.is_empty() && fraction.is_empty();
        if negative && !is_zero {
            return Err(AmountProblem::Negative);
        }
        if fraction.len() > 2 {
            return Err(AmountProblem::TooPrecise);
        }
        // 16 digits is already above 10^15; checking length first keeps the parse in range.
        if whole.len() > 16 {
            return Err(AmountProblem::TooLarge);
        }
        let units: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| AmountProblem::NotANumber)?
        };
        let cents: i64 = format!("{fraction:0<2}")
            .parse()
            .map_err(|_| AmountProblem::NotANumber)?;
        let total = units
            .checked_mul(100)
            .and_then(|u| u.checked_add(cents))
            .ok_or(AmountProblem::TooLarge)?;
        let money = Money(total);
        if money > MAX_AMOUNT {
            return Err(AmountProblem::TooLarge);
        }
        Ok(money)
    }
}

impl From<Money> for Amount {
    fn from(money: Money) -> Self {
        Self::Number(money.to_string())
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.to_money() {
            Ok(money) => money.serialize(serializer),
            Err(_) => match self {
                Self::Number(text) => serializer.serialize_str(text),
                Self::NotANumber(kind) => serializer.serialize_str(kind),
            },
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AmountVisitor)
    }
}

struct AmountVisitor;

impl<'de> Visitor<'de> for AmountVisitor {
    type Value = Amount;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amount of money")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Amount, E> {
        Ok(Amount::Number(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
        Ok(Amount::Number(v.to_string()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Amount, E> {
        Ok(Amount::Number(v.to_string()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Amount, E> {
        Ok(Amount::Number(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Amount, E> {
        if v.is_finite() {
            // `{}` prints the shortest decimal that reads back as `v`, never an exponent.
            Ok(Amount::Number(format!("{v}")))
        } else {
            Ok(Amount::NotANumber("a non-finite number"))
        }
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Amount, E> {
        Ok(Amount::NotANumber("a string"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Amount, E> {
        Ok(Amount::NotANumber("a boolean"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Amount, E> {
        Ok(Amount::NotANumber("null"))
    }

    fn visit_none<E: de::Error>(self) -> Result<Amount, E> {
        Ok(Amount::NotANumber("null"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Amount, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Amount::NotANumber("an array"))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Amount, A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Amount::NotANumber("an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Money, AmountProblem> {
        serde_json::from_str::<Amount>(json)
            .map_err(|_| AmountProblem::NotANumber)?
            .to_money()
    }

    #[test]
    fn json_numbers_become_exact_cents() {
        assert_eq!(parse("1000.0"), Ok(Money::from_cents(100_000)));
        assert_eq!(parse("0.1"), Ok(Money::from_cents(10)));
        assert_eq!(parse("0.01"), Ok(Money::from_cents(1)));
        assert_eq!(parse("12"), Ok(Money::from_cents(1200)));
        assert_eq!(parse("100.10"), Ok(Money::from_cents(10_010)));
        assert_eq!(parse("0"), Ok(Money::ZERO));
        assert_eq!(parse("-0.0"), Ok(Money::ZERO));
        assert_eq!(parse("1e15"), Ok(MAX_AMOUNT));
        assert_eq!(parse("1e2"), Ok(Money::from_cents(10_000)));
    }

    #[test]
    fn bad_amounts_say_why() {
        assert_eq!(parse("0.001"), Err(AmountProblem::TooPrecise));
        assert_eq!(parse("1.005"), Err(AmountProblem::TooPrecise));
        assert_eq!(parse("-5"), Err(AmountProblem::Negative));
        assert_eq!(parse("-0.5"), Err(AmountProblem::Negative));
        assert_eq!(parse("1000000000000000.5"), Err(AmountProblem::TooLarge));
        assert_eq!(parse("1000000000000001"), Err(AmountProblem::TooLarge));
        assert_eq!(parse("1e16"), Err(AmountProblem::TooLarge));
        assert_eq!(parse("1e300"), Err(AmountProblem::TooLarge));
        assert_eq!(parse("18446744073709551616"), Err(AmountProblem::TooLarge));
        assert_eq!(parse("\"12\""), Err(AmountProblem::NotANumber));
        assert_eq!(parse("null"), Err(AmountProblem::NotANumber));
        assert_eq!(parse("[1]"), Err(AmountProblem::NotANumber));
        assert_eq!(parse("true"), Err(AmountProblem::NotANumber));
    }

    #[test]
    fn money_serializes_as_a_json_number_and_reads_back_exactly() {
        let sum = Money::from_cents(10).checked_add(Money::from_cents(20));
        assert_eq!(sum, Some(Money::from_cents(30)));
        let json = serde_json::to_string(&Money::from_cents(30)).unwrap();
        assert_eq!(json, "0.3");
        assert_eq!(
            serde_json::to_string(&Money::from_cents(130_000)).unwrap(),
            "1300.0"
        );
        let back: Money = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Money::from_cents(30));
        assert!(serde_json::from_str::<Money>("0.001").is_err());
        assert!(serde_json::from_str::<Money>("1e300").is_err());
        assert!(serde_json::from_str::<Money>("\"1\"").is_err());
        assert_eq!(
            serde_json::from_str::<Money>("12").unwrap(),
            Money::from_cents(1200)
        );
        assert_eq!(
            serde_json::from_str::<Money>("-0.07").unwrap(),
            Money::from_cents(-7)
        );
        for cents in [1, 10, 99, 12_345, 100_000_000_000_001, -250] {
            let money = Money::from_cents(cents);
            let json = serde_json::to_string(&money).unwrap();
            assert_eq!(
                serde_json::from_str::<Money>(&json).unwrap(),
                money,
                "{json}"
            );
        }
        assert_eq!(Money::from_cents(-1234).to_string(), "-12.34");
    }
}
