//! Exact JSON: decoding that never loses a digit of a number, and the check that what is
//! stored reads back.
//!
//! serde_json (without `arbitrary_precision`, which breaks numbers inside the internally
//! tagged enums events are) hands every number with a fraction or exponent to serde as an
//! `f64`. An `f64` holds about 15.95 significant decimal digits, so `999999999999999.99`
//! arrives as `1000000000000000.0`. [`from_str`] decodes so that an exact-number type (such
//! as money, built on [`ExactNumber`] or the helpers of this module) always sees the exact
//! decimal text:
//!
//! - **Fast path.** A byte scan looks at every number token. If each is an integer of at
//!   most 18 digits (serde_json reads it as an exact `i64`/`u64`), or has no exponent, at most
//!   22 digits after the point and at most 15 digits counting from the first non-zero one,
//!   plain `serde_json::from_str` is used, and it is exact: serde_json reads such a number as
//!   its digits `m < 10^15 < 2^53` (exact as an `f64`) divided by `10^k`, `k <= 22` (exact
//!   as an `f64`), one correctly rounded operation, so it gets the `f64` `x` nearest to the
//!   decimal `D`. The shortest decimal that reads back as `x` (what a visitor prints with
//!   `{}`) is `D`: two distinct decimals of at most 15 significant digits differ by at least
//!   `10^-15` of their size, more than four times the spacing of `f64`s there (`2^-52` of
//!   the size), so no `f64` is nearest to two of them; the shortest text of `x` has at most
//!   `D`'s digits (`D` itself reads back as `x`) and so is `D`.
//! - **Lossless path**, for any other document: once serde_json has validated it, one pass
//!   over the text builds a [`serde_json::Value`] (numbers taken as written) in which
//!   every number that serde_json would not read back exactly is replaced by the marker
//!   object `{"$factum::number": "<text>"}` ([`NUMBER_MARKER`]); integers that fit `i64`/`u64`
//!   and floats whose shortest text is their decimal stay numbers. Then `T` is deserialized
//!   from that value. An exact-number visitor reads the marker in `visit_map` (see
//!   [`number_in_map`]); an `f64` field given such a number fails to decode rather than
//!   silently rounding.
//!
//! [`parse_body`] is the lossless path for request bodies: it also refuses a key repeated in
//! one object (the last one would otherwise silently win). [`check_reads_back`] is what the
//! engine runs before an append: the stored text must decode into a value that serializes
//! to the same JSON.

mod number;

use std::fmt::Write as _;

use serde::de::{self, DeserializeOwned};
use serde_json::{Map, Value};

pub use number::{
    Decimal, ExactNumber, ExactNumberVisitor, NUMBER_MARKER, f64_text, number_in_map,
    serialize_number,
};

/// How deep the lossless path lets objects and arrays nest.
pub const MAX_DEPTH: usize = 128;

/// Decodes JSON text into `T`, numbers exactly (see the module docs).
pub fn from_str<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    if numbers_read_exactly(text.as_bytes()) {
        serde_json::from_str(text)
    } else {
        T::deserialize(lossless(text, false)?)
    }
}

/// [`from_str`] over bytes, which must be UTF-8.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    from_str(utf8(bytes)?)
}

/// Reads a request body into a value for commands: the lossless path always, numbers no
/// `f64` holds as markers, and a key repeated in an object refused (naming the key and
/// where it is). Syntax errors are serde_json's (with line and column); the others are
/// `data` errors ([`serde_json::Error::is_data`]).
pub fn parse_body(bytes: &[u8]) -> serde_json::Result<Value> {
    lossless(utf8(bytes)?, true)
}

/// Decodes `text` as `T` (numbers exactly), re-serializes it and compares: `Ok` when the
/// value reads back as the same JSON (key order and number spelling aside), else what
/// differs and where (`$.amount`). The engine runs this on every event, snapshot and view
/// record before they are stored.
pub fn check_reads_back<T: serde::Serialize + DeserializeOwned>(
    text: &str,
) -> Result<(), Mismatch> {
    let decoded: T = decode_whole(text)?;
    compare_again(text, &decoded)
}

/// `text` decoded as `T`, or why not, at the root.
fn decode_whole<T: DeserializeOwned>(text: &str) -> Result<T, Mismatch> {
    from_str(text).map_err(|error| Mismatch {
        path: "$".to_owned(),
        problem: format!("it cannot be decoded: {error}"),
    })
}

/// [`check_reads_back`] for a type with equality: the decoded value must also equal
/// `value`, which catches a type that writes less than it holds (an amount written through
/// an `f64`) even when its JSON reads back the same.
pub fn check_value_reads_back<T: serde::Serialize + DeserializeOwned + PartialEq>(
    value: &T,
    text: &str,
) -> Result<(), Mismatch> {
    let decoded: T = decode_whole(text)?;
    if decoded == *value {
        return Ok(());
    }
    compare_again(text, &decoded)?;
    Err(Mismatch {
        path: "$".to_owned(),
        problem: format!(
            "it decodes to a different value than was written (its type writes less than it \
             holds): {}",
            clip(text)
        ),
    })
}

fn compare_again<T: serde::Serialize>(text: &str, decoded: &T) -> Result<(), Mismatch> {
    let again = serde_json::to_string(decoded).map_err(|error| Mismatch {
        path: "$".to_owned(),
        problem: format!("it cannot be encoded again: {error}"),
    })?;
    if again == text {
        return Ok(());
    }
    let (written, read): (Value, Value) = match (lossless(text, false), lossless(&again, false)) {
        (Ok(written), Ok(read)) => (written, read),
        (Err(error), _) | (_, Err(error)) => {
            return Err(Mismatch {
                path: "$".to_owned(),
                problem: format!("it is not valid JSON: {error}"),
            });
        }
    };
    let mut path = "$".to_owned();
    match first_difference(&written, &read, &mut path) {
        None => Ok(()),
        Some(problem) => Err(Mismatch { path, problem }),
    }
}

/// Where a value does not read back as written, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// A JSON path such as `$.amount` or `$.items[2]`.
    pub path: String,
    /// What differs.
    pub problem: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

fn utf8(bytes: &[u8]) -> serde_json::Result<&str> {
    std::str::from_utf8(bytes).map_err(|e| de::Error::custom(format_args!("not UTF-8: {e}")))
}

/// Compares two values in exact form; numbers compare by decimal value.
fn first_difference(written: &Value, read: &Value, path: &mut String) -> Option<String> {
    let as_number = |v: &Value| match v {
        Value::Number(n) => Decimal::parse(&n.to_string()),
        Value::Object(map) if map.len() == 1 => map
            .get(NUMBER_MARKER)
            .and_then(Value::as_str)
            .and_then(Decimal::parse),
        _ => None,
    };
    if let (Some(a), Some(b)) = (as_number(written), as_number(read)) {
        return (a != b).then(|| format!("{} would read back as {}", show(written), show(read)));
    }
    match (written, read) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let len = path.len();
                let _ = write!(path, ".{key}");
                let found = match b.get(key) {
                    Some(other) => first_difference(value, other, path),
                    None => Some("it would be missing when read back".to_owned()),
                };
                if found.is_some() {
                    return found;
                }
                path.truncate(len);
            }
            let extra = b.keys().find(|key| !a.contains_key(*key))?;
            let _ = write!(path, ".{extra}");
            Some("it would appear when read back".to_owned())
        }
        (Value::Array(a), Value::Array(b)) => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                let len = path.len();
                let _ = write!(path, "[{index}]");
                if let Some(found) = first_difference(x, y, path) {
                    return Some(found);
                }
                path.truncate(len);
            }
            (a.len() != b.len())
                .then(|| format!("{} items would read back as {}", a.len(), b.len()))
        }
        (a, b) if a == b => None,
        (a, b) => Some(format!("{} would read back as {}", show(a), show(b))),
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::Object(map) if map.len() == 1 => match map.get(NUMBER_MARKER) {
            Some(Value::String(text)) => clip(text),
            _ => clip(&value.to_string()),
        },
        _ => clip(&value.to_string()),
    }
}

fn clip(text: &str) -> String {
    if text.len() > 120 {
        let cut = (0..=120)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}...", &text[..cut])
    } else {
        text.to_owned()
    }
}

/// Whether every number token of `bytes` is one serde_json reads exactly (see the module
/// docs). Text inside strings is skipped; invalid JSON just takes either path and fails.
fn numbers_read_exactly(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                if !token_reads_exactly(&bytes[start..i]) {
                    return false;
                }
            }
            _ => i += 1,
        }
    }
    true
}

fn token_reads_exactly(token: &[u8]) -> bool {
    let token = token.strip_prefix(b"-").unwrap_or(token);
    if token.iter().any(|b| matches!(b, b'e' | b'E')) {
        return false;
    }
    let Some(point) = token.iter().position(|&b| b == b'.') else {
        return token.len() <= 18;
    };
    let fraction = token.len() - point - 1;
    let leading_zeros = token
        .iter()
        .take_while(|&&b| b == b'0' || b == b'.')
        .filter(|&&b| b == b'0')
        .count();
    fraction <= 22 && token.len() - 1 - leading_zeros <= 15
}

/// The lossless path: a value with markers for numbers no `f64` holds.
///
/// serde_json first validates the whole document (syntax, nesting, nothing after it), so
/// errors carry its line and column; then one pass over the text builds the value, taking
/// each number's text as written.
fn lossless(text: &str, refuse_duplicates: bool) -> serde_json::Result<Value> {
    serde_json::from_str::<de::IgnoredAny>(text)?;
    let mut walker = Walker {
        text,
        pos: 0,
        refuse_duplicates,
        path: "$".to_owned(),
    };
    walker.value(0)
}

/// A single pass over a validated document.
struct Walker<'a> {
    text: &'a str,
    pos: usize,
    refuse_duplicates: bool,
    path: String,
}

impl Walker<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> serde_json::Result<()> {
        self.skip_whitespace();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn unexpected(&self) -> serde_json::Error {
        de::Error::custom(format_args!(
            "unexpected input at byte {} ({})",
            self.pos, self.path
        ))
    }

    fn value(&mut self, depth: usize) -> serde_json::Result<Value> {
        if depth > MAX_DEPTH {
            return Err(de::Error::custom(format_args!(
                "nesting deeper than {MAX_DEPTH} levels at {}",
                self.path
            )));
        }
        self.skip_whitespace();
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                while matches!(
                    self.peek(),
                    Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                ) {
                    self.pos += 1;
                }
                let token = self
                    .text
                    .get(start..self.pos)
                    .ok_or_else(|| self.unexpected())?;
                Ok(number(token))
            }
            _ => {
                for (word, value) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    let rest = self.text.as_bytes().get(self.pos..).unwrap_or_default();
                    if rest.starts_with(word.as_bytes()) {
                        self.pos += word.len();
                        return Ok(value);
                    }
                }
                Err(self.unexpected())
            }
        }
    }

    fn string(&mut self) -> serde_json::Result<String> {
        let start = self.pos;
        self.pos += 1;
        let mut escaped = false;
        loop {
            match self.peek() {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 2;
                }
                Some(_) => self.pos += 1,
                None => return Err(self.unexpected()),
            }
        }
        self.pos += 1;
        let token = self
            .text
            .get(start..self.pos)
            .ok_or_else(|| self.unexpected())?;
        if escaped {
            serde_json::from_str(token)
        } else {
            let inner = token.get(1..token.len() - 1);
            inner.map(str::to_owned).ok_or_else(|| self.unexpected())
        }
    }

    fn object(&mut self, depth: usize) -> serde_json::Result<Value> {
        let mut object = Map::new();
        self.members(b'}', |this| {
            this.skip_whitespace();
            let key = this.string()?;
            let len = this.path.len();
            let _ = write!(this.path, ".{key}");
            if key == NUMBER_MARKER {
                return Err(de::Error::custom(format_args!(
                    "the key {NUMBER_MARKER:?} is reserved (at {})",
                    this.path
                )));
            }
            if this.refuse_duplicates && object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {key:?} at {}",
                    this.path
                )));
            }
            this.expect(b':')?;
            let value = this.value(depth + 1)?;
            this.path.truncate(len);
            object.insert(key, value);
            Ok(())
        })?;
        Ok(Value::Object(object))
    }

    fn array(&mut self, depth: usize) -> serde_json::Result<Value> {
        let mut array = Vec::new();
        self.members(b']', |this| {
            let len = this.path.len();
            let _ = write!(this.path, "[{}]", array.len());
            array.push(this.value(depth + 1)?);
            this.path.truncate(len);
            Ok(())
        })?;
        Ok(Value::Array(array))
    }

    /// The members of an object or array whose opening bracket is at `pos`, each read by
    /// `member`, separated by commas, up to and past `close`.
    fn members(
        &mut self,
        close: u8,
        mut member: impl FnMut(&mut Self) -> serde_json::Result<()>,
    ) -> serde_json::Result<()> {
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            member(self)?;
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.unexpected()),
            }
        }
    }
}

/// A number token (already validated) as serde_json would read it, or as a marker when that
/// would not read back as the same decimal.
fn number(text: &str) -> Value {
    match serde_json::from_str::<serde_json::Number>(text) {
        Ok(n) if n.is_i64() || n.is_u64() => Value::Number(n),
        Ok(n) if n.as_f64().is_some_and(|v| number::f64_keeps(text, v)) => Value::Number(n),
        // Not representable (out of range, or more digits than an f64 holds).
        _ => marker(text),
    }
}

fn marker(text: &str) -> Value {
    let mut object = Map::new();
    object.insert(NUMBER_MARKER.to_owned(), Value::String(text.to_owned()));
    Value::Object(object)
}

#[cfg(test)]
mod tests;
