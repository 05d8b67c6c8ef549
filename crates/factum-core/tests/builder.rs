//! The engine builder refuses settings that cannot work, keeps the ones given, and the
//! typed command errors round-trip through the core error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use factum_core::*;
use serde::{Deserialize, Serialize};

define_domain_errors! {
    /// Errors of a seat booking.
    pub enum SeatError {
        domain: "SEAT",
        prefix: 40,
        /// The seat is taken.
        Taken { seat: u32 } = (1, 409, "SEAT_TAKEN", "seat {seat} is taken"),
    }
}

#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum SeatEvent {
    Opened,
    Booked { seat: u32 },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Hall {
    id: String,
    booked: Vec<u32>,
}

/// A service the handler awaits: which seats exist (a stand-in for a lookup elsewhere).
#[async_trait]
trait SeatMap: Send + Sync {
    async fn exists(&self, seat: u32) -> bool;
}

struct SmallHall {
    asked: AtomicU32,
}

#[async_trait]
impl SeatMap for SmallHall {
    async fn exists(&self, seat: u32) -> bool {
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.asked.fetch_add(1, Ordering::SeqCst);
        seat < 10
    }
}

impl Aggregate for Hall {
    const TYPE: &'static str = "hall";
    type Event = SeatEvent;
    type Error = SeatError;
    fn with_aggregate_id(id: String) -> Self {
        Self {
            id,
            booked: Vec::new(),
        }
    }
    fn aggregate_id(&self) -> &str {
        &self.id
    }
    fn apply(&mut self, event: &SeatEvent) {
        if let SeatEvent::Booked { seat } = event {
            self.booked.push(*seat);
        }
    }
}

impl CommandHandler for Hall {
    type CreateCommand = ();
    type UpdateCommand = u32;
    type Services = Arc<dyn SeatMap>;
    async fn handle_create(
        &self,
        _: &(),
        _: &Self::Services,
        _: &CqrsContext,
    ) -> Result<Vec<SeatEvent>, SeatError> {
        Ok(vec![SeatEvent::Opened])
    }
    async fn handle_update(
        &self,
        seat: &u32,
        seats: &Self::Services,
        _: &CqrsContext,
    ) -> Result<Vec<SeatEvent>, SeatError> {
        if self.booked.contains(seat) || !seats.exists(*seat).await {
            return Err(SeatError::Taken { seat: *seat });
        }
        Ok(vec![SeatEvent::Booked { seat: *seat }])
    }
}

fn seat_map() -> (Arc<SmallHall>, Arc<dyn SeatMap>) {
    let hall = Arc::new(SmallHall {
        asked: AtomicU32::new(0),
    });
    (hall.clone(), hall)
}

#[tokio::test]
async fn handlers_await_their_services_and_callers_match_the_typed_error() {
    let (hall, seats) = seat_map();
    let engine = CqrsCommandEngine::<Hall>::builder(Arc::new(InMemoryEventStore::new()))
        .services(seats)
        .build()
        .unwrap();
    let ctx = CqrsContext::new();
    engine.create_with_id("h-1", &(), &ctx).await.unwrap();
    assert_eq!(engine.update("h-1", &3, &ctx).await.unwrap().version, 2);
    for seat in [3, 12] {
        match engine.update("h-1", &seat, &ctx).await {
            Err(CommandError::Domain(SeatError::Taken { seat: refused })) => {
                assert_eq!(refused, seat);
            }
            other => panic!("expected SEAT_TAKEN for {seat}, got {other:?}"),
        }
    }
    assert_eq!(
        hall.asked.load(Ordering::SeqCst),
        2,
        "seat 3 twice refused before asking"
    );
    assert_eq!(
        engine.store().stream_version("hall", "h-1").await.unwrap(),
        2
    );

    // Existence is the engine's: no handler runs for a missing hall or a second create.
    let missing = engine.update("h-9", &1, &ctx).await.unwrap_err();
    assert!(
        matches!(missing, CommandError::NotFound { ref aggregate_id, .. } if aggregate_id == "h-9")
    );
    let again = engine.create_with_id("h-1", &(), &ctx).await.unwrap_err();
    assert!(matches!(again, CommandError::AlreadyExists { .. }));
    let odd = engine.update("no spaces", &1, &ctx).await.unwrap_err();
    assert!(matches!(odd, CommandError::Validation(_)), "{odd:?}");
    assert_eq!(hall.asked.load(Ordering::SeqCst), 2);
}

#[test]
fn command_errors_render_and_round_trip_as_core_errors() {
    let domain: CommandError<SeatError> = CommandError::Domain(SeatError::Taken { seat: 4 });
    assert_eq!(
        (domain.status(), domain.code().as_str()),
        (409, "SEAT_TAKEN")
    );
    let core = Error::from(domain);
    assert_eq!(
        core.domain_error::<SeatError>(),
        Some(&SeatError::Taken { seat: 4 })
    );
    let back = CommandError::<SeatError>::from(core);
    assert!(matches!(
        back,
        CommandError::Domain(SeatError::Taken { seat: 4 })
    ));

    let conflict = CommandError::<SeatError>::from(Error::Conflict {
        aggregate_type: "hall".into(),
        aggregate_id: "h-1".into(),
        expected: ExpectedVersion::Exact(1),
        actual: Some(2),
    });
    assert!(conflict.is_conflict());
    assert_eq!(conflict.status(), 409);
    assert_eq!(conflict.code(), "CONCURRENCY_CONFLICT");

    // Each typed case renders as the core error of the same case does.
    let cases: Vec<Error> = vec![
        Error::AggregateNotFound {
            aggregate_type: "hall".into(),
            aggregate_id: "h".into(),
        },
        Error::AggregateAlreadyExists {
            aggregate_type: "hall".into(),
            aggregate_id: "h".into(),
        },
        Error::TooManyConflicts {
            aggregate_type: "hall".into(),
            aggregate_id: "h".into(),
            attempts: 3,
        },
        Error::Validation("bad id".into()),
        Error::Unrepresentable {
            what: "Booked event".into(),
            path: "$.seat".into(),
            problem: "rounds".into(),
        },
        Error::Unavailable("down".into()),
    ];
    for case in cases {
        let expected = case.to_cqrs_error();
        let typed = CommandError::<SeatError>::from(case);
        assert_eq!(typed.to_cqrs_error(), expected, "{typed:?}");
        assert_eq!(Error::from(typed).to_cqrs_error(), expected);
    }

    // Another domain's error keeps its own rendering.
    let foreign = CommandError::<SeatError>::from(Error::domain(standard::StandardError::Gone));
    assert!(matches!(foreign, CommandError::Store(_)));
    assert_eq!(foreign.code(), "GONE");
}

#[tokio::test]
async fn the_builder_refuses_settings_that_cannot_work() {
    let (_, seats) = seat_map();
    let memory: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let zero = CqrsCommandEngine::<Hall>::builder(memory.clone())
        .services(seats.clone())
        .max_attempts(0)
        .build()
        .unwrap_err();
    assert!(zero.to_string().contains("max_attempts"), "{zero}");
    let backwards = CqrsCommandEngine::<Hall>::builder(memory.clone())
        .services(seats.clone())
        .backoff(Duration::from_millis(10), Duration::from_millis(1))
        .build()
        .unwrap_err();
    assert!(backwards.to_string().contains("backoff"), "{backwards}");

    let engine = CqrsCommandEngine::<Hall>::builder(memory)
        .services(seats)
        .max_attempts(7)
        .backoff(Duration::from_millis(2), Duration::from_millis(20))
        .snapshot_policy(SnapshotPolicy::Never)
        .cache_capacity(0)
        .id_generator(FnIdGenerator::new(|_: &(), _: &CqrsContext| {
            Ok("hall-x".to_owned())
        }))
        .build()
        .unwrap();
    let config = engine.config();
    assert_eq!(config.max_attempts, 7);
    assert_eq!(config.backoff_base, Duration::from_millis(2));
    assert_eq!(config.snapshot_policy, SnapshotPolicy::Never);
    assert_eq!(config.state_cache_capacity, 0);
    let created = engine.create(&(), &CqrsContext::new()).await.unwrap();
    assert_eq!(created.aggregate_id, "hall-x");
}
