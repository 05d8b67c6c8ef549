use serde::{Deserialize, Serialize};
use serde_json::json;

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Tagged {
    Paid { amount: ExactNumber, note: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Flat {
    id: u64,
    #[serde(flatten)]
    inner: Inner,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Inner {
    amount: ExactNumber,
}

/// A random JSON number text: up to 30 significant digits, a point anywhere, sometimes an
/// exponent, sometimes negative.
fn random_number(rng: &mut fastrand::Rng) -> String {
    let len = rng.usize(1..=30);
    let mut digits: String = (0..len).map(|_| char::from(b'0' + rng.u8(0..10))).collect();
    if digits.len() > 1 {
        digits.replace_range(..1, &rng.u8(1..10).to_string());
    }
    let mut text = if rng.bool() {
        "-".to_owned()
    } else {
        String::new()
    };
    let point = rng.usize(0..=digits.len());
    if point == 0 {
        text.push_str("0.");
        text.push_str(&digits);
    } else if point == digits.len() {
        text.push_str(&digits);
    } else {
        text.push_str(&digits[..point]);
        text.push('.');
        text.push_str(&digits[point..]);
    }
    if rng.u8(0..5) == 0 {
        text.push_str(&format!("e{}", rng.i32(-40..=40)));
    }
    text
}

#[test]
fn exact_text_survives_decoding_and_encoding() {
    let mut rng = fastrand::Rng::with_seed(9);
    for _ in 0..20_000 {
        let text = random_number(&mut rng);
        let doc = format!(r#"{{"type":"Paid","note":"n","amount":{text}}}"#);
        let Tagged::Paid { amount, .. } = from_str::<Tagged>(&doc).unwrap();
        assert_eq!(amount.decimal(), Decimal::parse(&text).unwrap(), "{text}");
        let again = serde_json::to_string(&Tagged::Paid {
            amount: amount.clone(),
            note: "n".into(),
        })
        .unwrap();
        let back: Tagged = from_str(&again).unwrap();
        assert_eq!(
            back,
            Tagged::Paid {
                amount,
                note: "n".into()
            },
            "{text}"
        );
        let flat: Flat = from_str(&format!(r#"{{"id":7,"amount":{text}}}"#)).unwrap();
        assert_eq!(flat.inner.amount.decimal(), Decimal::parse(&text).unwrap());
    }
}

#[test]
fn the_fast_path_is_exact_where_it_is_taken() {
    // The argument of the module docs, checked: whatever the scan lets through reads back as
    // the same decimal through plain serde_json and `{}`.
    let mut rng = fastrand::Rng::with_seed(15);
    let mut taken = 0;
    for _ in 0..200_000 {
        let text = random_number(&mut rng);
        if !numbers_read_exactly(text.as_bytes()) {
            continue;
        }
        taken += 1;
        let value: Value = serde_json::from_str(&text).unwrap();
        let read = match &value {
            Value::Number(n) if n.is_f64() => f64_text(n.as_f64().unwrap()).unwrap(),
            Value::Number(n) => n.to_string(),
            other => panic!("{other}"),
        };
        assert_eq!(
            Decimal::parse(&read),
            Decimal::parse(&text),
            "{text} read as {read}"
        );
    }
    assert!(taken > 20_000, "only {taken} cases took the fast path");
}

#[test]
fn both_paths_give_the_same_value_where_numbers_fit() {
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..20_000 {
        let items: Vec<String> = (0..rng.usize(1..6))
            .map(|_| random_number(&mut rng))
            .collect();
        let doc = format!(
            r#"{{"a":[{}],"s":"1.00000000000000000001"}}"#,
            items.join(",")
        );
        let slow = lossless(&doc, true).unwrap();
        if let Ok(fast) = serde_json::from_str::<Value>(&doc) {
            let exact = items.iter().all(|t| {
                let n: serde_json::Number = serde_json::from_str(t).unwrap();
                n.is_i64() || n.is_u64() || number::f64_keeps(t, n.as_f64().unwrap())
            });
            assert_eq!(exact, fast == slow, "{doc}");
        }
        assert_eq!(from_str::<Value>(&doc).unwrap(), slow);
    }
}

#[test]
fn numbers_no_f64_holds_become_markers_and_others_stay_numbers() {
    let value = parse_body(
        br#"{"a": 999999999999999.99, "b": 0.1, "c": 18446744073709551615, "d": -9223372036854775808,
             "e": 1e400, "f": 18446744073709551616, "g": [1.0000000000000000000001], "h": "1e400"}"#,
    )
    .unwrap();
    assert_eq!(value["a"], json!({NUMBER_MARKER: "999999999999999.99"}));
    assert_eq!(value["b"], json!(0.1));
    assert_eq!(value["c"], json!(u64::MAX));
    assert_eq!(value["d"], json!(i64::MIN));
    assert_eq!(value["e"], json!({NUMBER_MARKER: "1e400"}));
    assert_eq!(value["f"], json!({NUMBER_MARKER: "18446744073709551616"}));
    assert_eq!(
        value["g"][0],
        json!({NUMBER_MARKER: "1.0000000000000000000001"})
    );
    assert_eq!(value["h"], json!("1e400"));
    let n: ExactNumber = serde_json::from_value(value["a"].clone()).unwrap();
    assert_eq!(n.as_str(), "999999999999999.99");
}

#[test]
fn duplicate_keys_are_refused_at_any_depth_naming_the_key() {
    let err = parse_body(br#"{"type":"Deposit","type":"Withdraw","amount":1}"#).unwrap_err();
    assert!(err.is_data());
    assert!(
        err.to_string()
            .contains(r#"duplicate key "type" at $.type"#),
        "{err}"
    );
    let err = parse_body(br#"{"a":[{"x":1},{"y":{"z":1,"z":2}}]}"#).unwrap_err();
    assert!(err.to_string().contains("$.a[1].y.z"), "{err}");
    // Escapes spell the same key.
    assert!(parse_body(br#"{"a":1,"\u0061":2}"#).is_err());
    assert!(parse_body(br#"{"a":1,"b":{"a":2}}"#).is_ok());
}

#[test]
fn bodies_may_not_forge_markers_or_nest_without_end() {
    let err = parse_body(br#"{"amount":{"$factum::number":"5"}}"#).unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
    let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 2), "]".repeat(MAX_DEPTH + 2));
    assert!(parse_body(deep.as_bytes()).is_err());
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(parse_body(ok.as_bytes()).is_ok());
    let syntax = parse_body(b"{\"a\": 1,}").unwrap_err();
    assert!(syntax.is_syntax(), "{syntax}");
    assert!(parse_body(b"[1] 2").is_err());
    assert!(parse_body(&[0xff, 0xfe]).is_err());
}

#[test]
fn the_read_back_check_names_the_field_that_would_change() {
    #[derive(Serialize, Deserialize)]
    struct Lossy {
        id: String,
        amount: f64,
    }
    let mismatch =
        check_reads_back::<Lossy>(r#"{"id":"a","amount":999999999999999.99}"#).unwrap_err();
    assert_eq!(mismatch.path, "$");
    assert!(mismatch.problem.contains("cannot be decoded"), "{mismatch}");
    #[derive(Serialize, Deserialize)]
    struct Rounds {
        amount: Rounded,
    }
    #[derive(Serialize)]
    struct Rounded(u64);
    impl<'de> Deserialize<'de> for Rounded {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let n = ExactNumber::deserialize(d)?;
            Ok(Rounded(
                n.decimal().scaled_integer(0).unwrap_or(0) as u64 / 10 * 10,
            ))
        }
    }
    let mismatch = check_reads_back::<Rounds>(r#"{"amount":15}"#).unwrap_err();
    assert_eq!(mismatch.path, "$.amount");
    assert!(
        mismatch.problem.contains("15 would read back as 10"),
        "{mismatch}"
    );
    assert!(check_reads_back::<Rounds>(r#"{ "amount" : 20 }"#).is_ok());
    assert!(check_reads_back::<Tagged>(r#"{"note":"x","type":"Paid","amount":1.50}"#).is_ok());
}

#[test]
fn the_lossless_walk_reads_every_json_shape_as_serde_json_does() {
    for doc in [
        r#"{}"#,
        r#"[]"#,
        " \t\r\n{ \"a\" : [ 1 , 2.5 , -0 , true , false , null , \"x\" ] , \"b\" : { } } \n",
        r#"{"esc\"aped\\key\u00e9":"line\nbreak \"quoted\" \\ \/ \b\f\r\t \u0041 \ud83d\ude00"}"#,
        r#"{"utf8":"héllo wörld ✓ 😀","empty":"","nested":[[[]],[{}],{"k":[{}]}]}"#,
        r#""just a string""#,
        "12",
        "-1.5e-3",
        "true",
        "null",
        r#"[{"a":{"b":{"c":[1,{"d":"e"}]}}}]"#,
    ] {
        let expected: Value = serde_json::from_str(doc).unwrap();
        assert_eq!(lossless(doc, true).unwrap(), expected, "{doc}");
    }
}

#[test]
fn a_deep_document_is_walked_once() {
    // 120 levels around a 60 KB string: a walk that re-read each level would scan it 120 times.
    let doc = format!(
        "{}\"{}\"{}",
        "[".repeat(120),
        "x".repeat(60_000),
        "]".repeat(120)
    );
    let start = std::time::Instant::now();
    for _ in 0..20 {
        parse_body(doc.as_bytes()).unwrap();
    }
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}
