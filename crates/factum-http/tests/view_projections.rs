//! The child view routes, the projection runner (spawned, parking what it cannot apply),
//! the document of the view routes, and their auth, on the players of `players/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod players;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use factum_core::store::AppendRequest;
use factum_core::{CqrsContext, EventStore};
use factum_http::{Api, HttpConfig, JwtAuth, view_routes};
use factum_testing::faulty::FaultyStore;
use factum_testing::http::{assert_schemas, column};
use serde_json::{Value, json};

use players::*;

#[tokio::test]
async fn an_async_child_view_catches_up_and_serves_one_aggregates_records() {
    let s = seeded(HttpConfig::default()).await;
    // Not running yet: the projection is behind by every event.
    assert_eq!(
        ok(&s.app, "/projections").await,
        json!([{"name": "goals", "checkpoint": 0, "head": 24, "behind": 24, "parked": 0, "parked_events": []}])
    );
    let (_, goals) = get(&s.app, "/players/p07/goals").await;
    assert_eq!(goals["total"], 0);

    assert_eq!(s.projections.catch_up().await.unwrap(), 24);
    let (_, lag) = get(&s.app, "/projections/goals").await;
    assert_eq!(
        lag,
        json!({"name": "goals", "checkpoint": 24, "head": 24, "behind": 0, "parked": 0, "parked_events": []})
    );
    let (status, body) = get(&s.app, "/projections/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["message"].as_str().unwrap().contains("runs: goals"),
        "{body}"
    );

    // p07 scored goal + 7 % 3 points for goal in 0..3, at versions 2 to 4.
    let goals = ok(&s.app, "/players/p07/goals").await;
    assert_eq!(
        goals,
        json!({"items": [
            {"player": "p07", "version": 2, "points": 1},
            {"player": "p07", "version": 3, "points": 2},
            {"player": "p07", "version": 4, "points": 3},
        ], "total": 3, "page": 1, "page_size": 50})
    );
    let (_, goals) = get(&s.app, "/players/p07/goals?sort=-points&page_size=1&page=2").await;
    assert_eq!(
        goals["items"],
        json!([{"player": "p07", "version": 3, "points": 2}])
    );
    let (_, goals) = get(&s.app, "/players/p07/goals?filter=points:gte:2").await;
    assert_eq!(goals["total"], 2);
    // A player without goals has an empty page; no player at all is the domain's 404.
    let (status, goals) = get(&s.app, "/players/p00/goals").await;
    assert_eq!((status, goals["total"].as_u64()), (StatusCode::OK, Some(0)));
    let (status, body) = get(&s.app, "/players/nobody/goals").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "PLAYER_NOT_FOUND");
    let (status, body) = get(&s.app, "/players/bad%20id/goals").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // The whole view is queryable too; ties are broken by record id (`p02-3` < `p07-4`).
    let (_, all) = get(&s.app, "/views/goals?sort=-points&page_size=3").await;
    assert_eq!(all["total"], 13);
    assert_eq!(
        all["items"][0],
        json!({"player": "p02", "version": 3, "points": 3})
    );
    assert_eq!(
        all["items"][1],
        json!({"player": "p07", "version": 4, "points": 3})
    );
}

#[tokio::test]
async fn spawned_projections_follow_commands_and_stop() {
    let s = service(HttpConfig::default());
    // A long poll: only the commit wake-up can make it follow quickly.
    let tasks = s.projections.spawn(Duration::from_secs(3600));
    seed(&s.engine).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, lag) = get(&s.app, "/projections/goals").await;
        if lag["behind"] == 0 && lag["head"] == 24 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never caught up: {lag}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (_, all) = get(&s.app, "/views/goals").await;
    assert_eq!(all["total"], 13);
    tokio::time::timeout(Duration::from_secs(5), tasks.stop())
        .await
        .unwrap();
    // Stopped: a new command is not projected.
    s.engine
        .update(
            "p01",
            &PlayerCommand::Score { points: 9 },
            &CqrsContext::new(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, lag) = get(&s.app, "/projections/goals").await;
    assert_eq!(lag["behind"], 1, "{lag}");
}

#[tokio::test]
async fn the_document_has_every_view_route_with_schemas() {
    let s = service(HttpConfig::default());
    let doc = ok(&s.app, "/openapi.json").await;
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/views/cards",
        "/views/cards/{id}",
        "/views/goals",
        "/views/goals/{id}",
        "/players/{id}/goals",
        "/projections",
        "/projections/{name}",
    ] {
        assert!(paths[path]["get"].is_object(), "missing {path}");
    }
    let list = &paths["/views/cards"]["get"];
    assert_eq!(
        list["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/PlayerCardPage"
    );
    assert_eq!(
        list["responses"]["400"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert_eq!(
        column(&list["parameters"], "name", Value::as_str),
        ["filter", "sort", "page", "page_size"]
    );
    let filter_doc = list["parameters"][0]["description"].as_str().unwrap();
    assert!(filter_doc.contains("`points` (number;"), "{filter_doc}");
    let sort_doc = paths["/players/{id}/goals"]["get"]["parameters"][2]["description"]
        .as_str()
        .unwrap();
    assert!(sort_doc.contains("Default: `version`"), "{sort_doc}");
    let schemas = assert_schemas(
        &doc,
        &[
            "PlayerCard",
            "PlayerCardPage",
            "Goal",
            "GoalPage",
            "ProjectionStatus",
            "ErrorBody",
        ],
    );
    assert_eq!(
        schemas["PlayerCardPage"]["properties"]["items"]["items"]["$ref"],
        "#/components/schemas/PlayerCard"
    );
    assert_eq!(
        paths["/views/cards/{id}"]["get"]["responses"]["404"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/ErrorBody"
    );
}

#[tokio::test]
async fn view_routes_need_a_token_when_auth_is_on() {
    let s = service(
        HttpConfig::default()
            .with_auth(JwtAuth::hs256("s3cret").unwrap())
            .with_public_docs(true),
    );
    for uri in [
        "/views/cards",
        "/views/cards/p01",
        "/players/p01/goals",
        "/projections",
    ] {
        let (status, body) = get(&s.app, uri).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(body["code"], "UNAUTHORIZED");
    }
    let (_, doc) = get(&s.app, "/openapi.json").await;
    assert!(doc["paths"]["/views/cards"]["get"]["security"].is_array());
    assert!(doc["paths"]["/views/cards"]["get"]["responses"]["401"].is_object());
}

#[test]
fn a_store_without_views_is_a_clear_startup_error() {
    let store: Arc<dyn EventStore> = Arc::new(FaultyStore::new());
    let error = Api::new(HttpConfig::default())
        .with_view::<PlayerCard>("/views", &store)
        .unwrap_err();
    assert!(
        matches!(error, factum_http::Error::ViewsUnsupported { ref view } if view == "player_cards")
    );
    assert_eq!(
        error.to_string(),
        "view 'player_cards' needs a store that keeps views; this event store does not"
    );
    assert!(matches!(
        Api::new(HttpConfig::default()).with_child_view::<Goal>("", &store),
        Err(factum_http::Error::ViewsUnsupported { .. })
    ));
    assert!(view_routes::<Goal>("/views", &store).is_err());
}

#[tokio::test]
async fn a_projection_parks_an_event_it_cannot_apply_and_reports_it() {
    let s = seeded(HttpConfig::default()).await;
    let poison = factum_core::store::NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: "Scored".to_owned(),
        schema_version: 1,
        payload: r#"{"type":"Scored","points":"many"}"#.to_owned(),
        metadata: "{}".to_owned(),
        recorded_at: chrono::Utc::now(),
    };
    let poison_id = poison.event_id.to_string();
    let stored = s
        .store
        .append(AppendRequest::new(
            "player",
            "p01",
            factum_core::ExpectedVersion::Any,
            vec![poison],
        ))
        .await
        .unwrap();
    let ctx = CqrsContext::new();
    s.engine
        .update("p09", &PlayerCommand::Score { points: 5 }, &ctx)
        .await
        .unwrap();
    // Caught up in spite of the poison event: it is parked after its attempts.
    s.projections.catch_up().await.unwrap();
    let lag = ok(&s.app, "/projections/goals").await;
    assert_eq!(
        (lag["behind"].as_u64(), lag["parked"].as_u64()),
        (Some(0), Some(1)),
        "{lag}"
    );
    let entry = &lag["parked_events"][0];
    assert_eq!(entry["position"], stored[0].position);
    assert_eq!(entry["event_id"], poison_id.as_str());
    assert_eq!(entry["aggregate_id"], "p01");
    assert_eq!(entry["event_type"], "Scored");
    assert_eq!(entry["attempts"], 5);
    assert!(
        entry["error"].as_str().unwrap().contains("Scored"),
        "{entry}"
    );
    let (_, all) = get(&s.app, "/projections").await;
    assert_eq!(all[0]["parked"], 1);
    // The event after the poison one was projected.
    let (_, goals) = get(&s.app, "/players/p09/goals").await;
    assert!(
        goals["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["points"] == 5),
        "{goals}"
    );
}
