//! Exact money: integer cents inside, JSON numbers outside, never through `f64`.
//!
//! Money is read from the exact text of a JSON number, as [`factum_core::json`] hands it
//! over (an integer, an `f64` whose shortest text is provably the number sent, or the marker
//! of a number no `f64` holds), and written as exact decimal text (`999999999999999.99`).

use std::fmt;

use factum_core::json::{self, Decimal};
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

    /// The nearest `f64`: for display and documentation only, never for storage or
    /// arithmetic (above about 10^13 it is not the amount).
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

impl Money {
    /// The amount as the text of a JSON number: at least one decimal, at most two, no
    /// trailing zero after the first (`1000.0`, `0.3`, `999999999999999.99`).
    pub fn json_text(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (units, cents) = (abs / 100, abs % 100);
        if cents % 10 == 0 {
            format!("{sign}{units}.{}", cents / 10)
        } else {
            format!("{sign}{units}.{cents:02}")
        }
    }

    /// The money a JSON number's text stands for: at most two decimals, within `i64` cents.
    pub fn from_json_text(text: &str) -> Result<Money, AmountProblem> {
        let decimal = Decimal::parse(text).ok_or(AmountProblem::NotANumber)?;
        if decimal.scale() > 2 {
            return Err(AmountProblem::TooPrecise);
        }
        decimal
            .scaled_integer(2)
            .and_then(|cents| i64::try_from(cents).ok())
            .map(Money)
            .ok_or(AmountProblem::TooLarge)
    }
}

impl Serialize for Money {
    /// Writes the exact decimal, digit for digit (never through `f64`).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        json::serialize_number(&self.json_text(), serializer)
    }
}

impl<'de> Deserialize<'de> for Money {
    /// Reads stored money (events, snapshots, views): a JSON number with at most two
    /// decimals, from its exact text. Exact when decoded with [`factum_core::json`], as the
    /// engine and the stores do; plain `serde_json` rounds numbers above about 15 digits.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MoneyVisitor)
    }
}

struct MoneyVisitor;

impl MoneyVisitor {
    fn money<E: de::Error>(text: &str) -> Result<Money, E> {
        Money::from_json_text(text).map_err(E::custom)
    }
}

impl<'de> Visitor<'de> for MoneyVisitor {
    type Value = Money;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amount of money with at most 2 decimal places")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
        Self::money(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
        Self::money(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
        let text = json::f64_text(v).ok_or_else(|| E::custom(AmountProblem::TooLarge))?;
        Self::money(&text)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Money, A::Error> {
        match json::number_in_map(map)? {
            Some(text) => Self::money(&text),
            None => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
        }
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

    /// Converts to money: a number, not negative, at most 2 decimals, at most 10^15. Exact
    /// for any text, exponents included (`1e15`, `1.0000000000000000000001`).
    pub fn to_money(&self) -> Result<Money, AmountProblem> {
        let text = match self {
            Self::Number(text) => text.as_str(),
            Self::NotANumber(_) => return Err(AmountProblem::NotANumber),
        };
        let decimal = Decimal::parse(text).ok_or(AmountProblem::NotANumber)?;
        if decimal.negative {
            return Err(AmountProblem::Negative);
        }
        let money = Money::from_json_text(text)?;
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
            // The shortest decimal that reads back as `v`: the exact text of the number sent
            // when the body was read with `factum_core::json` (see its docs).
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

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Amount, A::Error> {
        Ok(match json::number_in_map(map)? {
            Some(text) => Amount::Number(text),
            None => Amount::NotANumber("an object"),
        })
    }
}

/// The OpenAPI schemas of money: JSON numbers, exact to the cent (utoipa's derive would
/// document the Rust representation, not the JSON).
#[cfg(feature = "openapi")]
mod schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{RefOr, Schema};
    use utoipa::{PartialSchema, ToSchema};

    use super::{Amount, Money};

    fn number(description: &str) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .description(Some(description))
            .into()
    }

    impl PartialSchema for Money {
        fn schema() -> RefOr<Schema> {
            number("An amount of money, exact to the cent (at most 2 decimals)")
        }
    }

    impl ToSchema for Money {}

    impl PartialSchema for Amount {
        fn schema() -> RefOr<Schema> {
            number("An amount of money: at most 2 decimals, at most 1e15")
        }
    }

    impl ToSchema for Amount {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Money, AmountProblem> {
        factum_core::json::from_str::<Amount>(json)
            .map_err(|_| AmountProblem::NotANumber)?
            .to_money()
    }

    fn read(json: &str) -> Money {
        factum_core::json::from_str::<Money>(json).unwrap()
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
        assert_eq!(parse("1.5e1"), Ok(Money::from_cents(1_500)));
    }

    #[test]
    fn the_whole_contract_range_is_exact_at_its_boundaries() {
        for (text, cents) in [
            ("999999999999999.99", 99_999_999_999_999_999),
            ("93213944218088.35", 9_321_394_421_808_835),
            ("909183074016497.9", 90_918_307_401_649_790),
            ("43707753092916.88", 4_370_775_309_291_688),
            ("995401231716425.9", 99_540_123_171_642_590),
            ("1000000000000000", 100_000_000_000_000_000),
            ("1000000000000000.00", 100_000_000_000_000_000),
            ("0.01", 1),
        ] {
            assert_eq!(parse(text), Ok(Money::from_cents(cents)), "{text}");
            let stored = serde_json::to_string(&Money::from_cents(cents)).unwrap();
            assert_eq!(read(&stored), Money::from_cents(cents), "{stored}");
        }
        assert_eq!(parse("1000000000000000.01"), Err(AmountProblem::TooLarge));
        assert_eq!(
            parse("1.0000000000000000000001"),
            Err(AmountProblem::TooPrecise)
        );
        assert_eq!(parse("999999999999999.999"), Err(AmountProblem::TooPrecise));
        assert_eq!(parse("1e-400"), Err(AmountProblem::TooPrecise));
        assert_eq!(parse("1e400"), Err(AmountProblem::TooLarge));
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
        assert_eq!(parse("{}"), Err(AmountProblem::NotANumber));
        assert_eq!(parse("true"), Err(AmountProblem::NotANumber));
    }

    #[test]
    fn money_serializes_as_exact_decimal_text_and_reads_back_exactly() {
        let sum = Money::from_cents(10).checked_add(Money::from_cents(20));
        assert_eq!(sum, Some(Money::from_cents(30)));
        for (cents, text) in [
            (30, "0.3"),
            (130_000, "1300.0"),
            (100_000, "1000.0"),
            (150_000, "1500.0"),
            (1, "0.01"),
            (12_345, "123.45"),
            (0, "0.0"),
            (-7, "-0.07"),
            (99_999_999_999_999_999, "999999999999999.99"),
            (i64::MAX, "92233720368547758.07"),
        ] {
            let json = serde_json::to_string(&Money::from_cents(cents)).unwrap();
            assert_eq!(json, text);
            assert_eq!(read(&json), Money::from_cents(cents), "{json}");
        }
        assert!(factum_core::json::from_str::<Money>("0.001").is_err());
        assert!(factum_core::json::from_str::<Money>("1e300").is_err());
        assert!(factum_core::json::from_str::<Money>("\"1\"").is_err());
        assert!(factum_core::json::from_str::<Money>("{}").is_err());
        assert_eq!(read("12"), Money::from_cents(1200));
        assert_eq!(Money::from_cents(-1234).to_string(), "-12.34");
    }

    #[test]
    fn random_amounts_across_the_range_round_trip_exactly() {
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..50_000 {
            let cents = rng.i64(1..=MAX_AMOUNT.cents());
            let money = Money::from_cents(cents);
            let text = serde_json::to_string(&money).unwrap();
            assert_eq!(parse(&text), Ok(money), "{text}");
            assert_eq!(parse(&money.to_string()), Ok(money));
            assert_eq!(read(&text), money, "{text}");
        }
    }
}
