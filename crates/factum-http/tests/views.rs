//! The view routes: queries (filter, sort, page), limits and single records, on the players
//! of `players/`, driven with `oneshot`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod players;

use axum::http::StatusCode;
use factum_core::QueryLimits;
use factum_http::HttpConfig;
use factum_testing::http::column;
use serde_json::{Value, json};

use players::*;

#[tokio::test]
async fn list_filters_sorts_and_pages_records_decoded_as_the_view() {
    let s = seeded(HttpConfig::default()).await;

    let page = ok(&s.app, "/views/cards?filter=team:eq:red&sort=-points,name").await;
    assert_eq!(page["total"], 4);
    assert_eq!(
        (page["page"].as_u64(), page["page_size"].as_u64()),
        (Some(1), Some(50))
    );
    assert_eq!(
        names(&page),
        ["Player 3", "Player 6", "Player 0", "Player 9"],
        "{page}"
    );
    // Items are the view's records, exactly as the view serializes them.
    let first: PlayerCard = serde_json::from_value(page["items"][0].clone()).unwrap();
    assert_eq!(
        first,
        PlayerCard {
            name: "Player 3".into(),
            team: "red".into(),
            points: 3,
            active: false
        }
    );

    // Paging: 10 players, 4 per page, by name.
    let (_, page) = get(&s.app, "/views/cards?sort=name&page=3&page_size=4").await;
    assert_eq!(page["total"], 10);
    assert_eq!(names(&page), ["Player 8", "Player 9"]);
    let (_, page) = get(&s.app, "/views/cards?sort=name&page=4&page_size=4").await;
    assert_eq!((page["total"].as_u64(), names(&page).len()), (Some(10), 0));

    // Every operator, on the three kinds of field.
    let count = |uri: String| {
        let app = s.app.clone();
        async move {
            let page = ok(&app, &uri).await;
            page["total"].as_u64().unwrap()
        }
    };
    assert_eq!(count("/views/cards?filter=active:eq:false".into()).await, 1);
    assert_eq!(count("/views/cards?filter=active:ne:false".into()).await, 9);
    assert_eq!(
        count("/views/cards?filter=active:in:true|false".into()).await,
        10
    );
    // Points: p00 0, p01 1, p02 5, p03 3, p04 0, p05 2, p06 1, p07 6, p08 0, p09 0.
    assert_eq!(count("/views/cards?filter=points:gt:2".into()).await, 3);
    assert_eq!(count("/views/cards?filter=points:gte:2".into()).await, 4);
    assert_eq!(count("/views/cards?filter=points:lt:1".into()).await, 4);
    assert_eq!(count("/views/cards?filter=points:lte:1".into()).await, 6);
    assert_eq!(count("/views/cards?filter=points:in:3|6".into()).await, 2);
    assert_eq!(count("/views/cards?filter=points:ne:0".into()).await, 6);
    assert_eq!(
        count("/views/cards?filter=points:gte:1,points:lte:3".into()).await,
        4
    );
    // Text compares bytewise: "Green" < "blue" < "red".
    assert_eq!(count("/views/cards?filter=team:lt:blue".into()).await, 3);
    assert_eq!(
        count("/views/cards?filter=team:contains:ree".into()).await,
        3
    );
    assert_eq!(
        count("/views/cards?filter=team:contains:REE".into()).await,
        0
    );
    assert_eq!(
        count("/views/cards?filter=team:in:red|blue,active:eq:true".into()).await,
        6
    );
    assert_eq!(
        count("/views/cards?filter=name:eq:Player%201".into()).await,
        1
    );
}

#[tokio::test]
async fn every_rejected_query_is_a_structured_400_listing_the_fields() {
    let s = seeded(HttpConfig::default()).await;
    let rejected = [
        ("filter=salary:eq:1", "unknown field 'salary'"),
        ("filter=team:like:red", "unknown operator 'like'"),
        ("filter=points:eq:many", "'many' is not a number"),
        ("filter=points:eq:NaN", "is not a number"),
        ("filter=active:eq:yes", "'yes' is not true or false"),
        ("filter=points:contains:1", "does not apply"),
        ("filter=active:gt:true", "does not apply"),
        ("filter=team:eq", "is not field:op:value"),
        ("sort=-salary", "unknown field 'salary'"),
        ("page=0", "page starts at 1"),
        ("page_size=0", "page_size must be between 1 and 1000"),
        ("page_size=1001", "page_size must be between 1 and 1000"),
    ];
    for (query, expected) in rejected {
        let (status, body) = get(&s.app, &format!("/views/cards?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], "VALIDATION_ERROR", "{query}: {body}");
        assert_eq!(body["status"], 400);
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(expected), "{query}: {message}");
        assert!(
            message.starts_with("invalid player_cards query"),
            "{message}"
        );
        assert_eq!(
            column(&body["details"]["fields"], "name", Value::as_str),
            ["name", "team", "points", "active"]
        );
        // The children route rejects it too (a goal has no name, team or active either).
        let (status, body) = get(&s.app, &format!("/players/p01/goals?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], "VALIDATION_ERROR", "{query}: {body}");
    }
    // Malformed numbers in the paging never reach the view: still a structured 400.
    for query in [
        "page=abc",
        "page=-1",
        "page_size=99999999999",
        "page=1&page=2",
    ] {
        let (status, body) = get(&s.app, &format!("/views/cards?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], "VALIDATION_ERROR", "{query}: {body}");
    }
    // A very long field name is cut short in the message.
    let long = "x".repeat(5000);
    let (status, body) = get(&s.app, &format!("/views/cards?filter={long}:eq:1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().len() < 400, "{body}");
}

#[tokio::test]
async fn too_many_clauses_are_a_400_and_the_limit_is_configurable() {
    let s = seeded(HttpConfig::default()).await;
    let filters = |n: usize| vec!["team:ne:x"; n].join(",");
    let sorts = |n: usize| vec!["-points"; n].join(",");
    for base in ["/views/cards", "/players/p01/goals"] {
        let field = if base == "/views/cards" {
            "team"
        } else {
            "points"
        };
        let filter = |n: usize| match field {
            "team" => filters(n),
            _ => vec!["points:gte:0"; n].join(","),
        };
        ok(&s.app, &format!("{base}?filter={}", filter(16))).await;
        for (query, expected) in [
            (format!("filter={}", filter(17)), "17 filter clauses"),
            (format!("filter={}", filter(1000)), "1000 filter clauses"),
            (format!("sort={}", sorts(17)), "17 sort keys"),
            (format!("sort={}", sorts(1000)), "1000 sort keys"),
            (
                format!("filter={field}:in:{}", vec!["1"; 101].join("|")),
                "values in one 'in' filter",
            ),
        ] {
            let (status, body) = get(&s.app, &format!("{base}?{query}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{base}: {body}");
            assert_eq!(body["code"], "VALIDATION_ERROR", "{body}");
            let message = body["message"].as_str().unwrap();
            assert!(message.contains(expected), "{message}");
            assert_eq!(body["details"]["max_clauses"], 16, "{body}");
            assert_eq!(body["details"]["max_in_values"], 100, "{body}");
        }
    }
    // A service may allow more, or fewer.
    let wide = seeded(HttpConfig::default().with_query_limits(QueryLimits::new(1000, 1000))).await;
    let body = ok(&wide.app, &format!("/views/cards?filter={}", filters(1000))).await;
    assert_eq!(body["total"], 10);
    ok(&wide.app, &format!("/views/cards?sort={}", sorts(1000))).await;
    let narrow = seeded(HttpConfig::default().with_query_limits(QueryLimits::new(1, 2))).await;
    let (status, body) = get(&narrow.app, "/views/cards?filter=team:ne:x,team:ne:y").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["details"]["max_clauses"], 1, "{body}");
}

#[tokio::test]
async fn one_record_by_id_and_a_structured_404_when_missing() {
    let s = seeded(HttpConfig::default()).await;
    assert_eq!(
        ok(&s.app, "/views/cards/p03").await,
        json!({"name": "Player 3", "team": "red", "points": 3, "active": false})
    );
    let (status, body) = get(&s.app, "/views/cards/p99").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NOT_FOUND");
    assert_eq!(body["message"], "no player_cards record 'p99'");
    assert!(body["requestId"].is_string());
}
