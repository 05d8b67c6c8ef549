//! The bank's money parser (a JSON amount -> `Amount` -> `Money`, read as request bodies are
//! read, by `factum_core::json::parse_body`) against an independent reference: an amount is
//! accepted exactly when it is a JSON number that is a whole number of cents between 0 and
//! 10^15, and then it is that number exactly; what is accepted writes back (as text and as
//! JSON, read back as events are) to the same value.
#![no_main]

use bank::money::{Amount, Money, MAX_AMOUNT};
use libfuzzer_sys::fuzz_target;

/// What the contract says of a decimal number.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    /// Accepted, as this many cents.
    Cents(i64),
    /// Refused: negative, a third decimal, or above 10^15.
    Refused,
}

/// A decimal `±digits × 10^exponent`, read from text without any floating point.
struct Decimal {
    negative: bool,
    /// No leading or trailing zeros; empty for zero.
    digits: String,
    exponent: i64,
}

impl Decimal {
    /// Reads `-?int(.frac)?([eE][+-]?exp)?`; `json` asks for JSON's grammar (no leading
    /// zeros, digits on both sides of the point), otherwise it also takes `007`, `.5`, `5.`.
    fn parse(text: &str, json: bool) -> Option<Self> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let (int, frac) = match mantissa.split_once('.') {
            Some((int, frac)) => (int, Some(frac)),
            None => (mantissa, None),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int) || !frac.is_none_or(all_digits) {
            return None;
        }
        if json {
            if int.is_empty() || (int.len() > 1 && int.starts_with('0')) {
                return None;
            }
            if frac.is_some_and(str::is_empty) {
                return None;
            }
        } else if int.is_empty() && frac.is_none_or(str::is_empty) {
            return None;
        }
        let frac = frac.unwrap_or("");
        let mut exponent: i64 = match exponent {
            None => 0,
            Some(e) => {
                let (sign, digits) = match e.as_bytes().first() {
                    Some(b'-') => (-1, &e[1..]),
                    Some(b'+') => (1, &e[1..]),
                    _ => (1, e),
                };
                if digits.is_empty() || !all_digits(digits) {
                    return None;
                }
                // Far beyond any amount either way; saturating keeps the arithmetic safe.
                let digits = digits.trim_start_matches('0');
                let magnitude: i64 = if digits.len() > 13 {
                    1_000_000_000_000
                } else {
                    digits.parse().unwrap_or(0)
                };
                sign * magnitude
            }
        };
        exponent -= frac.len() as i64;
        let mut digits = format!("{int}{frac}").trim_start_matches('0').to_owned();
        while digits.ends_with('0') {
            digits.pop();
            exponent += 1;
        }
        Some(Self {
            negative,
            digits,
            exponent,
        })
    }

    fn expected(&self) -> Expected {
        if self.digits.is_empty() {
            return Expected::Cents(0);
        }
        if self.negative {
            return Expected::Refused;
        }
        let shift = self.exponent + 2;
        // A last digit below the cent: a third decimal.
        if shift < 0 || self.digits.len() as i64 + shift > 18 {
            return Expected::Refused;
        }
        let mut cents: i64 = self.digits.parse().unwrap_or(i64::MAX);
        for _ in 0..shift {
            cents = cents.saturating_mul(10);
        }
        if cents > MAX_AMOUNT.cents() {
            Expected::Refused
        } else {
            Expected::Cents(cents)
        }
    }
}

/// What is accepted writes back to text and to JSON that read as the same money.
fn writes_back(money: Money) {
    assert!(money >= Money::ZERO && money <= MAX_AMOUNT, "{money:?}");
    let text = money.to_string();
    assert_eq!(
        Amount::Number(text.clone()).to_money(),
        Ok(money),
        "{money:?} as text {text}"
    );
    let json = serde_json::to_string(&money).unwrap();
    assert_eq!(json, money.json_text());
    let again: Amount = factum_core::json::from_str(&json).unwrap();
    assert_eq!(again.to_money(), Ok(money), "{money:?} as JSON {json}");
    let stored: Money = factum_core::json::from_str(&json).unwrap();
    assert_eq!(stored, money, "{money:?} stored as {json}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The text of an amount, as the domain reads it.
    let from_text = Amount::Number(text.to_owned()).to_money();
    if let Ok(money) = from_text {
        let reference = Decimal::parse(text, false).map(|d| d.expected());
        assert_eq!(reference, Some(Expected::Cents(money.cents())), "{text:?}");
        writes_back(money);
    }
    // A JSON document, as a command body's amount.
    let Ok(body) = factum_core::json::parse_body(data) else {
        return;
    };
    let Ok(amount) = serde_json::from_value::<Amount>(body) else {
        return;
    };
    let result = amount.to_money();
    match Decimal::parse(text.trim_matches([' ', '\t', '\n', '\r']), true) {
        Some(decimal) => match (decimal.expected(), result) {
            (Expected::Cents(cents), Ok(money)) => {
                assert_eq!(money.cents(), cents, "{text:?} read inexactly");
                writes_back(money);
            }
            (Expected::Refused, Err(_)) => {}
            (expected, got) => panic!("{text:?}: expected {expected:?}, got {got:?}"),
        },
        None => assert!(result.is_err(), "{text:?} is not a number: {result:?}"),
    }
});
