//! The view routes and the projection runner, on a small test domain (players who join a
//! team, score and get benched): a per-player card kept inline and a child view of scores run
//! as an asynchronous projection, over the in-memory store, driven with `oneshot`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use factum_core::{
    Aggregate, AppendRequest, CommandHandler, Commands, CqrsCommandEngine, CqrsContext, Event,
    EventEnvelope, EventStore, FieldKind, InMemoryEventStore, Projector, QueryLimits, Snapshot,
    StoredEvent, View, ViewField, ViewKind, async_trait, define_domain_errors,
};
use factum_http::{Api, HttpAggregate, HttpConfig, HttpView, JwtAuth, Projections, view_routes};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower::ServiceExt;
use utoipa::ToSchema;

define_domain_errors! {
    /// Player errors.
    pub enum PlayerError {
        domain: "PLAYER",
        prefix: 78,
        /// No such player.
        NotFound { id: String } = (1, 404, "PLAYER_NOT_FOUND", "player '{id}' not found"),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type")]
enum PlayerEvent {
    Joined { name: String, team: String },
    Scored { points: u32 },
    Benched,
}

impl Event for PlayerEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Joined { .. } => "Joined",
            Self::Scored { .. } => "Scored",
            Self::Benched => "Benched",
        }
    }
}

#[derive(Commands, Debug, Deserialize, ToSchema)]
#[serde(tag = "type")]
enum JoinCommand {
    Join { name: String, team: String },
}

#[derive(Commands, Debug, Deserialize, ToSchema)]
#[serde(tag = "type")]
enum PlayerCommand {
    Score { points: u32 },
    Bench,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Player {
    id: String,
}

impl Aggregate for Player {
    const TYPE: &'static str = "player";
    type Event = PlayerEvent;
    type Error = PlayerError;

    fn with_aggregate_id(id: String) -> Self {
        Self { id }
    }

    fn aggregate_id(&self) -> &str {
        &self.id
    }

    fn apply(&mut self, _: &PlayerEvent) {}
}

impl CommandHandler for Player {
    type CreateCommand = JoinCommand;
    type UpdateCommand = PlayerCommand;
    type Services = ();

    async fn handle_create(
        &self,
        JoinCommand::Join { name, team }: &JoinCommand,
        _: &(),
        _: &CqrsContext,
    ) -> Result<Vec<PlayerEvent>, PlayerError> {
        Ok(vec![PlayerEvent::Joined {
            name: name.clone(),
            team: team.clone(),
        }])
    }

    async fn handle_update(
        &self,
        command: &PlayerCommand,
        _: &(),
        _: &CqrsContext,
    ) -> Result<Vec<PlayerEvent>, PlayerError> {
        Ok(vec![match command {
            PlayerCommand::Score { points } => PlayerEvent::Scored { points: *points },
            PlayerCommand::Bench => PlayerEvent::Benched,
        }])
    }

    fn not_found_error(id: &str) -> Option<PlayerError> {
        Some(PlayerError::NotFound { id: id.to_owned() })
    }
}

#[derive(Serialize, ToSchema)]
struct PlayerState {
    id: String,
}

impl HttpAggregate for Player {
    const PATH: &'static str = "players";
    type View = PlayerState;

    fn view(&self) -> PlayerState {
        PlayerState {
            id: self.id.clone(),
        }
    }
}

/// One record per player.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
struct PlayerCard {
    name: String,
    team: String,
    points: u64,
    active: bool,
}

impl View for PlayerCard {
    const TYPE: &'static str = "player_cards";
    const KIND: ViewKind = ViewKind::PerAggregate;
    type Aggregate = Player;

    fn fields() -> &'static [ViewField] {
        const FIELDS: &[ViewField] = &[
            ViewField::new("name", FieldKind::Text),
            ViewField::new("team", FieldKind::Text),
            ViewField::new("points", FieldKind::Number),
            ViewField::new("active", FieldKind::Boolean),
        ];
        FIELDS
    }

    fn update(&self, envelope: &EventEnvelope<PlayerEvent>) -> Option<Self> {
        let mut next = self.clone();
        match &envelope.payload {
            PlayerEvent::Joined { name, team } => {
                next.name.clone_from(name);
                next.team.clone_from(team);
                next.active = true;
            }
            PlayerEvent::Scored { points } => next.points += u64::from(*points),
            PlayerEvent::Benched => next.active = false,
        }
        Some(next)
    }
}

impl HttpView for PlayerCard {
    const PATH: &'static str = "cards";
}

/// One record per goal: a child view, run as an asynchronous projection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
struct Goal {
    player: String,
    version: u64,
    points: u64,
}

impl View for Goal {
    const TYPE: &'static str = "goals";
    const KIND: ViewKind = ViewKind::ChildOfAggregate;
    type Aggregate = Player;

    fn fields() -> &'static [ViewField] {
        const FIELDS: &[ViewField] = &[
            ViewField::new("points", FieldKind::Number),
            ViewField::new("version", FieldKind::Number),
        ];
        FIELDS
    }

    fn update(&self, envelope: &EventEnvelope<PlayerEvent>) -> Option<Self> {
        match &envelope.payload {
            PlayerEvent::Scored { points } => Some(Self {
                player: envelope.aggregate_id.clone(),
                version: envelope.version,
                points: u64::from(*points),
            }),
            _ => None,
        }
    }
}

impl HttpView for Goal {
    fn default_sort() -> &'static str {
        "version"
    }
}

struct Service {
    app: Router,
    engine: CqrsCommandEngine<Player>,
    projections: Projections,
    store: Arc<dyn EventStore>,
}

fn service(config: HttpConfig) -> Service {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let projections = Projections::new().with(Projector::<Goal>::for_store(store.clone()).unwrap());
    let engine = CqrsCommandEngine::<Player>::builder(store.clone())
        .inline_view::<PlayerCard>()
        .dispatcher(projections.waker::<Player>())
        .build()
        .unwrap();
    let app = Api::new(config)
        .with_health(store.clone())
        .with_aggregate("", engine.clone())
        .with_view::<PlayerCard>("/views", &store)
        .unwrap()
        .with_view::<Goal>("/views", &store)
        .unwrap()
        .with_child_view::<Goal>("", &store)
        .unwrap()
        .with_projections(&projections)
        .into_router();
    let store = store.clone();
    Service {
        app,
        engine,
        projections,
        store,
    }
}

/// Ten players in three teams, with goals; one benched.
async fn seed(engine: &CqrsCommandEngine<Player>) {
    let ctx = CqrsContext::new();
    let teams = ["red", "blue", "Green"];
    for i in 0..10u32 {
        let id = format!("p{i:02}");
        let join = JoinCommand::Join {
            name: format!("Player {i}"),
            team: teams[i as usize % 3].to_owned(),
        };
        engine.create_with_id(&id, &join, &ctx).await.unwrap();
        for goal in 0..i % 4 {
            let score = PlayerCommand::Score {
                points: goal + i % 3,
            };
            engine.update(&id, &score, &ctx).await.unwrap();
        }
    }
    engine
        .update("p03", &PlayerCommand::Bench, &ctx)
        .await
        .unwrap();
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn list_filters_sorts_and_pages_records_decoded_as_the_view() {
    let s = service(HttpConfig::default());
    seed(&s.engine).await;

    let (status, page) = get(&s.app, "/views/cards?filter=team:eq:red&sort=-points,name").await;
    assert_eq!(status, StatusCode::OK, "{page}");
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
            let (status, page) = get(&app, &uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {page}");
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
    let s = service(HttpConfig::default());
    seed(&s.engine).await;
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
        let fields: Vec<&str> = body["details"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["name", "team", "points", "active"]);
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
    let s = service(HttpConfig::default());
    seed(&s.engine).await;
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
        let (status, body) = get(&s.app, &format!("{base}?filter={}", filter(16))).await;
        assert_eq!(status, StatusCode::OK, "{base}: {body}");
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
    let wide = service(HttpConfig::default().with_query_limits(QueryLimits::new(1000, 1000)));
    seed(&wide.engine).await;
    let (status, body) = get(&wide.app, &format!("/views/cards?filter={}", filters(1000))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 10);
    let (status, body) = get(&wide.app, &format!("/views/cards?sort={}", sorts(1000))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let narrow = service(HttpConfig::default().with_query_limits(QueryLimits::new(1, 2)));
    seed(&narrow.engine).await;
    let (status, body) = get(&narrow.app, "/views/cards?filter=team:ne:x,team:ne:y").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["details"]["max_clauses"], 1, "{body}");
}

#[tokio::test]
async fn one_record_by_id_and_a_structured_404_when_missing() {
    let s = service(HttpConfig::default());
    seed(&s.engine).await;
    let (status, card) = get(&s.app, "/views/cards/p03").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        card,
        json!({"name": "Player 3", "team": "red", "points": 3, "active": false})
    );
    let (status, body) = get(&s.app, "/views/cards/p99").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NOT_FOUND");
    assert_eq!(body["message"], "no player_cards record 'p99'");
    assert!(body["requestId"].is_string());
}

#[tokio::test]
async fn an_async_child_view_catches_up_and_serves_one_aggregates_records() {
    let s = service(HttpConfig::default());
    seed(&s.engine).await;
    // Not running yet: the projection is behind by every event.
    let (status, lags) = get(&s.app, "/projections").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        lags,
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
    let (status, goals) = get(&s.app, "/players/p07/goals").await;
    assert_eq!(status, StatusCode::OK, "{goals}");
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
    let (status, doc) = get(&s.app, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
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
    let params: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["filter", "sort", "page", "page_size"]);
    let filter_doc = list["parameters"][0]["description"].as_str().unwrap();
    assert!(filter_doc.contains("`points` (number;"), "{filter_doc}");
    let sort_doc = paths["/players/{id}/goals"]["get"]["parameters"][2]["description"]
        .as_str()
        .unwrap();
    assert!(sort_doc.contains("Default: `version`"), "{sort_doc}");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in [
        "PlayerCard",
        "PlayerCardPage",
        "Goal",
        "GoalPage",
        "ProjectionStatus",
        "ErrorBody",
    ] {
        assert!(schemas.contains_key(schema), "missing schema {schema}");
    }
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

/// A store that keeps events only.
#[derive(Default)]
struct EventsOnly(InMemoryEventStore);

#[async_trait]
impl EventStore for EventsOnly {
    async fn append(&self, request: AppendRequest) -> factum_core::Result<Vec<StoredEvent>> {
        self.0.append(request).await
    }
    async fn read_stream(
        &self,
        t: &str,
        id: &str,
        from: u64,
        limit: Option<usize>,
    ) -> factum_core::Result<Vec<StoredEvent>> {
        self.0.read_stream(t, id, from, limit).await
    }
    async fn read_all(&self, after: u64, limit: usize) -> factum_core::Result<Vec<StoredEvent>> {
        self.0.read_all(after, limit).await
    }
    async fn stream_version(&self, t: &str, id: &str) -> factum_core::Result<u64> {
        self.0.stream_version(t, id).await
    }
    async fn load_snapshot(&self, t: &str, id: &str) -> factum_core::Result<Option<Snapshot>> {
        self.0.load_snapshot(t, id).await
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> factum_core::Result<()> {
        self.0.save_snapshot(snapshot).await
    }
    async fn head_position(&self) -> factum_core::Result<u64> {
        self.0.head_position().await
    }
}

#[test]
fn a_store_without_views_is_a_clear_startup_error() {
    let store: Arc<dyn EventStore> = Arc::new(EventsOnly::default());
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
    let s = service(HttpConfig::default());
    seed(&s.engine).await;
    let poison = factum_core::NewEvent {
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
    let (status, lag) = get(&s.app, "/projections/goals").await;
    assert_eq!(status, StatusCode::OK);
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
