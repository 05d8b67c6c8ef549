//! The test domain of the view tests: players who join a team, score and get benched; a
//! per-player card kept inline and a child view of scores run as an asynchronous projection,
//! over the in-memory store.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use factum_core::{
    Aggregate, CommandHandler, Commands, CqrsCommandEngine, CqrsContext, Event, EventEnvelope,
    EventStore, FieldKind, InMemoryEventStore, Projections, Projector, View, ViewField, ViewKind,
    define_domain_errors,
};
use factum_http::{Api, HttpAggregate, HttpConfig, HttpView};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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

#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum PlayerEvent {
    Joined { name: String, team: String },
    Scored { points: u32 },
    Benched,
}

#[derive(Commands, Debug, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum JoinCommand {
    Join { name: String, team: String },
}

#[derive(Commands, Debug, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum PlayerCommand {
    Score { points: u32 },
    Bench,
}

/// A player's state holds its id alone (what it did lives in the views), and is shown as is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Player {
    pub id: String,
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

impl HttpAggregate for Player {
    const PATH: &'static str = "players";
    type View = Self;

    fn view(&self) -> Self {
        self.clone()
    }
}

/// One record per player.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlayerCard {
    pub name: String,
    pub team: String,
    pub points: u64,
    pub active: bool,
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
pub struct Goal {
    pub player: String,
    pub version: u64,
    pub points: u64,
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

pub struct Service {
    pub app: Router,
    pub engine: CqrsCommandEngine<Player>,
    pub projections: Projections,
    pub store: Arc<dyn EventStore>,
}

pub fn service(config: HttpConfig) -> Service {
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

/// [`service`] with [`seed`]ed players.
pub async fn seeded(config: HttpConfig) -> Service {
    let service = service(config);
    seed(&service.engine).await;
    service
}

/// Ten players in three teams, with goals; one benched.
pub async fn seed(engine: &CqrsCommandEngine<Player>) {
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

pub async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    let reply = factum_testing::http::get(app, uri).await;
    match reply.body {
        Value::Null => (reply.status, Value::String(reply.text)),
        body => (reply.status, body),
    }
}

/// `GET uri`, which must answer 200; its JSON body.
pub async fn ok(app: &Router, uri: &str) -> Value {
    let (status, body) = get(app, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    body
}

pub fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect()
}
