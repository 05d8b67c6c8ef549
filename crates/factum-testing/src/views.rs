//! View conformance: inline views and asynchronous projections, checked against a replay of
//! the events from scratch, on a small domain of bar tabs.

// This module is test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use factum_core::{
    Aggregate, CommandHandler, CqrsCommandEngine, CqrsContext, EngineBuilder, EngineConfig, Event,
    EventEnvelope, EventStore, FieldKind, Projector, SnapshotPolicy, Upcasters, View, ViewField,
    ViewKind, ViewQuery, ViewStore, define_domain_errors,
};
use serde::{Deserialize, Serialize};

define_domain_errors! {
    /// Why a tab refuses a command.
    pub enum TabError {
        domain: "TAB",
        prefix: 77,
        /// No such item on the tab.
        NoSuchItem { item_id: u32 } = (1, 404, "TAB_NO_SUCH_ITEM", "no item {item_id} on the tab"),
        /// The tab is paid and closed.
        Paid = (2, 409, "TAB_PAID", "the tab is paid"),
    }
}

/// What happens to a bar tab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TabEvent {
    /// The tab was opened.
    Opened {
        /// Whose tab it is.
        owner: String,
    },
    /// An item was put on the tab.
    ItemAdded {
        /// The item's number on this tab.
        item_id: u32,
        /// What it is.
        name: String,
        /// Its price in cents.
        price: i64,
    },
    /// An item was taken off the tab.
    ItemRemoved {
        /// The item's number.
        item_id: u32,
    },
    /// The tab was paid.
    Paid,
}

impl Event for TabEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Opened { .. } => "Opened",
            Self::ItemAdded { .. } => "ItemAdded",
            Self::ItemRemoved { .. } => "ItemRemoved",
            Self::Paid => "Paid",
        }
    }
}

/// A bar tab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tab {
    id: String,
    owner: String,
    items: BTreeMap<u32, i64>,
    next_item: u32,
    paid: bool,
}

/// Commands on a tab.
#[derive(Debug, Clone)]
pub enum TabCommand {
    /// Put an item on the tab.
    Add {
        /// What it is.
        name: String,
        /// Its price in cents.
        price: i64,
    },
    /// Take an item off.
    Remove {
        /// Its number.
        item_id: u32,
    },
    /// Pay.
    Pay,
}

impl Aggregate for Tab {
    const TYPE: &'static str = "tab";
    type Event = TabEvent;
    type Error = TabError;

    fn with_aggregate_id(id: String) -> Self {
        Self {
            id,
            owner: String::new(),
            items: BTreeMap::new(),
            next_item: 1,
            paid: false,
        }
    }

    fn aggregate_id(&self) -> &str {
        &self.id
    }

    fn apply(&mut self, event: &TabEvent) {
        match event {
            TabEvent::Opened { owner } => self.owner.clone_from(owner),
            TabEvent::ItemAdded { item_id, price, .. } => {
                self.items.insert(*item_id, *price);
                self.next_item = item_id + 1;
            }
            TabEvent::ItemRemoved { item_id } => {
                self.items.remove(item_id);
            }
            TabEvent::Paid => self.paid = true,
        }
    }
}

impl CommandHandler for Tab {
    type CreateCommand = String;
    type UpdateCommand = TabCommand;
    type Services = ();

    async fn handle_create(
        &self,
        owner: &String,
        _: &(),
        _: &CqrsContext,
    ) -> Result<Vec<TabEvent>, TabError> {
        Ok(vec![TabEvent::Opened {
            owner: owner.clone(),
        }])
    }

    async fn handle_update(
        &self,
        command: &TabCommand,
        _: &(),
        _: &CqrsContext,
    ) -> Result<Vec<TabEvent>, TabError> {
        if self.paid {
            return Err(TabError::Paid);
        }
        match command {
            TabCommand::Add { name, price } => Ok(vec![TabEvent::ItemAdded {
                item_id: self.next_item,
                name: name.clone(),
                price: *price,
            }]),
            TabCommand::Remove { item_id } if self.items.contains_key(item_id) => {
                Ok(vec![TabEvent::ItemRemoved { item_id: *item_id }])
            }
            TabCommand::Remove { item_id } => Err(TabError::NoSuchItem { item_id: *item_id }),
            TabCommand::Pay => Ok(vec![TabEvent::Paid]),
        }
    }
}

/// One record per tab: a per-aggregate view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TabSummary {
    /// Whose tab.
    pub owner: String,
    /// Items on the tab.
    pub items: u64,
    /// Their total, in cents.
    pub total: i64,
    /// Whether it is paid.
    pub paid: bool,
}

impl View for TabSummary {
    const TYPE: &'static str = "tab_summaries";
    const KIND: ViewKind = ViewKind::PerAggregate;
    type Aggregate = Tab;

    fn fields() -> &'static [ViewField] {
        const FIELDS: &[ViewField] = &[
            ViewField::new("owner", FieldKind::Text),
            ViewField::new("items", FieldKind::Number),
            ViewField::new("total", FieldKind::Number),
            ViewField::new("paid", FieldKind::Boolean),
        ];
        FIELDS
    }

    fn update(&self, envelope: &EventEnvelope<TabEvent>) -> Option<Self> {
        let mut next = self.clone();
        match &envelope.payload {
            TabEvent::Opened { owner } => next.owner.clone_from(owner),
            TabEvent::ItemAdded { price, .. } => {
                next.items += 1;
                next.total += price;
            }
            // The summary cannot know the removed item's price: it is looked up in the
            // item view by projections that need it. Here it counts items only.
            TabEvent::ItemRemoved { .. } => next.items = next.items.saturating_sub(1),
            TabEvent::Paid => next.paid = true,
        }
        Some(next)
    }
}

/// One record per item on a tab: a child view with its own ids, deleted on removal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TabItem {
    /// The tab.
    pub tab: String,
    /// The item's number.
    pub item_id: u32,
    /// What it is.
    pub name: String,
    /// Its price in cents.
    pub price: i64,
    /// Whether it was removed (removed records are deleted).
    pub removed: bool,
}

impl View for TabItem {
    const TYPE: &'static str = "tab_items";
    const KIND: ViewKind = ViewKind::ChildOfAggregate;
    type Aggregate = Tab;

    fn fields() -> &'static [ViewField] {
        const FIELDS: &[ViewField] = &[
            ViewField::new("name", FieldKind::Text),
            ViewField::new("price", FieldKind::Number),
        ];
        FIELDS
    }

    fn view_id(envelope: &EventEnvelope<TabEvent>) -> String {
        match &envelope.payload {
            TabEvent::ItemAdded { item_id, .. } | TabEvent::ItemRemoved { item_id } => {
                format!("{}-{item_id}", envelope.aggregate_id)
            }
            _ => format!("{}-tab", envelope.aggregate_id),
        }
    }

    fn update(&self, envelope: &EventEnvelope<TabEvent>) -> Option<Self> {
        match &envelope.payload {
            TabEvent::ItemAdded {
                item_id,
                name,
                price,
            } => Some(Self {
                tab: envelope.aggregate_id.clone(),
                item_id: *item_id,
                name: name.clone(),
                price: *price,
                removed: false,
            }),
            TabEvent::ItemRemoved { .. } => Some(Self {
                removed: true,
                ..self.clone()
            }),
            _ => None,
        }
    }

    fn is_deleted(&self) -> bool {
        self.removed
    }
}

/// Runs `count` random commands (seeded) over 20 tabs through `engine`; some are refused by
/// the domain, as in real traffic.
pub async fn random_commands(engine: &CqrsCommandEngine<Tab>, count: usize, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let ctx = CqrsContext::new();
    for tab in 0..20 {
        engine
            .create_with_id(
                &format!("tab-{tab:02}"),
                &format!("owner {}", tab % 7),
                &ctx,
            )
            .await
            .unwrap();
    }
    for _ in 0..count {
        let tab = format!("tab-{:02}", rng.u32(0..20));
        let command = match rng.u32(0..20) {
            0 => TabCommand::Pay,
            1..=6 => TabCommand::Remove {
                item_id: rng.u32(1..8),
            },
            _ => TabCommand::Add {
                name: ["beer", "wine", "crisps", "water"][rng.usize(0..4)].to_owned(),
                price: rng.i64(100..1000),
            },
        };
        // Refusals (paid tab, missing item) are part of the workload.
        let _ = engine.update(&tab, &command, &ctx).await;
    }
}

/// Every record of a view type, by id, as JSON.
pub async fn all_records(
    views: &dyn ViewStore,
    view_type: &str,
    fields: &[ViewField],
) -> BTreeMap<String, serde_json::Value> {
    let mut records = BTreeMap::new();
    let mut page = 1;
    loop {
        let query = ViewQuery {
            page,
            page_size: factum_core::MAX_PAGE_SIZE,
            ..ViewQuery::default()
        };
        let result = views.query_views(view_type, &query, fields).await.unwrap();
        let done = result.items.len() < query.page_size as usize;
        for record in result.items {
            // Exactly: a number no f64 holds compares by its text.
            records.insert(
                record.view_id,
                factum_core::json::from_str(&record.data).unwrap(),
            );
        }
        if done {
            return records;
        }
        page += 1;
    }
}

/// The records of view `V` folded from every stored event, from scratch, in memory.
pub async fn replay<V: View>(store: &dyn EventStore) -> BTreeMap<String, serde_json::Value> {
    let mut records: BTreeMap<String, V> = BTreeMap::new();
    let mut after = 0;
    loop {
        let batch = store.read_all(after, 1000).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = last.position;
        for stored in &batch {
            if stored.aggregate_type != <V::Aggregate as Aggregate>::TYPE {
                continue;
            }
            let envelope = Upcasters::new()
                .decode::<<V::Aggregate as Aggregate>::Event>(stored)
                .unwrap();
            let id = V::view_id(&envelope);
            let current = records.get(&id).cloned().unwrap_or_default();
            if let Some(next) = current.update(&envelope) {
                if next.is_deleted() {
                    records.remove(&id);
                } else {
                    records.insert(id, next);
                }
            }
        }
    }
    records
        .into_iter()
        .map(|(id, v)| {
            let text = serde_json::to_string(&v).unwrap();
            (id, factum_core::json::from_str(&text).unwrap())
        })
        .collect()
}

fn engine_builder(store: &Arc<dyn EventStore>) -> EngineBuilder<Tab> {
    CqrsCommandEngine::<Tab>::builder(store.clone())
        .config(EngineConfig::default().with_snapshot_policy(SnapshotPolicy::EveryCommand))
}

fn engine(store: &Arc<dyn EventStore>) -> CqrsCommandEngine<Tab> {
    engine_builder(store).build().unwrap()
}

/// Inline views equal a from-scratch replay after 1,000 random commands.
pub async fn inline_views_equal_replay(store: Arc<dyn EventStore>) {
    let engine = engine_builder(&store)
        .inline_view::<TabSummary>()
        .inline_view::<TabItem>()
        .build()
        .unwrap();
    random_commands(&engine, 1000, 7).await;
    let views = store.as_view_store().expect("the store keeps views");
    let summaries = all_records(views, TabSummary::TYPE, TabSummary::fields()).await;
    assert_eq!(summaries.len(), 20);
    assert_eq!(summaries, replay::<TabSummary>(&*store).await);
    let items = all_records(views, TabItem::TYPE, TabItem::fields()).await;
    assert!(!items.is_empty());
    assert_eq!(items, replay::<TabItem>(&*store).await);
    let children = views.list_views_of(TabItem::TYPE, "tab-03").await.unwrap();
    assert!(
        children
            .iter()
            .all(|r| r.aggregate_id == "tab-03" && r.view_id.starts_with("tab-03-"))
    );
}

/// A projection stopped mid-way (its task aborted) resumes from its checkpoint and ends equal
/// to the replay; a rebuild from 0 produces the same rows again; a rebuild stopped mid-way
/// is reported unfinished until a rebuild completes.
pub async fn projection_resumes_and_rebuilds(store: Arc<dyn EventStore>) {
    let engine = engine(&store);
    random_commands(&engine, 600, 11).await;
    let views_store: Arc<dyn ViewStore> = store
        .clone()
        .into_view_store()
        .expect("the store keeps views");
    let projector =
        Arc::new(Projector::<TabItem>::new(store.clone(), views_store.clone()).with_batch_size(25));
    for _ in 0..3 {
        assert!(projector.run_once().await.unwrap() > 0);
    }
    let lag = projector.lag().await.unwrap();
    assert_eq!(lag.checkpoint, 75);
    assert!(lag.behind() > 0);
    // A runner killed at an arbitrary point: whatever batch it was in is either committed
    // with its checkpoint or not at all.
    let runner = {
        let projector = projector.clone();
        tokio::spawn(async move { projector.catch_up(|_| {}).await })
    };
    tokio::task::yield_now().await;
    runner.abort();
    let _ = runner.await;
    let resumed = Projector::<TabItem>::new(store.clone(), views_store.clone()).with_batch_size(40);
    let mut reports = 0;
    resumed.catch_up(|_| reports += 1).await.unwrap();
    assert_eq!(resumed.lag().await.unwrap().behind(), 0);
    let expected = replay::<TabItem>(&*store).await;
    assert!(!expected.is_empty());
    let projected = all_records(&*views_store, TabItem::TYPE, TabItem::fields()).await;
    assert_eq!(projected, expected);

    // New events after catch-up are picked up too.
    engine
        .update(
            "tab-00",
            &TabCommand::Add {
                name: "late".into(),
                price: 1,
            },
            &CqrsContext::new(),
        )
        .await
        .ok();
    resumed.catch_up(|_| {}).await.unwrap();
    assert_eq!(
        all_records(&*views_store, TabItem::TYPE, TabItem::fields()).await,
        replay::<TabItem>(&*store).await
    );

    let before = all_records(&*views_store, TabItem::TYPE, TabItem::fields()).await;
    let mut progress = Vec::new();
    let read = resumed
        .rebuild(|lag| progress.push(lag.checkpoint))
        .await
        .unwrap();
    assert_eq!(read, store.head_position().await.unwrap());
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress moves forward"
    );
    assert_eq!(
        all_records(&*views_store, TabItem::TYPE, TabItem::fields()).await,
        before
    );
    assert!(!resumed.rebuild_unfinished().await.unwrap());

    // A rebuild killed midway is known afterwards (the view is incomplete and, for a view
    // kept inline, nothing else would complete it); a new rebuild redoes it and clears it.
    // The process dies after the first batch: no code of the rebuild runs after it.
    let rebuild = {
        let projector =
            Projector::<TabItem>::new(store.clone(), views_store.clone()).with_batch_size(25);
        tokio::spawn(async move {
            projector
                .rebuild(|_| panic!("the rebuild's process is killed (simulated)"))
                .await
        })
    };
    assert!(
        rebuild.await.is_err(),
        "the rebuild was killed before it finished"
    );
    assert!(resumed.rebuild_unfinished().await.unwrap());
    assert!(resumed.lag().await.unwrap().behind() > 0);
    resumed.rebuild(|_| {}).await.unwrap();
    assert!(!resumed.rebuild_unfinished().await.unwrap());
    assert_eq!(
        all_records(&*views_store, TabItem::TYPE, TabItem::fields()).await,
        before
    );
    let _ = reports;
}

/// An event the view cannot apply (its payload does not decode) is tried a bounded number of
/// times, then parked (durably, with its position, id and error) and the projection goes on:
/// later events are projected. A rebuild forgets the parked entries and parks the event again.
pub async fn projection_parks_a_poison_event(store: Arc<dyn EventStore>) {
    let engine = engine(&store);
    let ctx = CqrsContext::new();
    engine
        .create_with_id("tab-a", &"Ann".to_owned(), &ctx)
        .await
        .unwrap();
    let poison = factum_core::store::NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: "Opened".to_owned(),
        schema_version: 1,
        payload: r#"{"type":"Opened","owner":{"not":"a string"}}"#.to_owned(),
        metadata: "{}".to_owned(),
        recorded_at: chrono::Utc::now(),
    };
    let poison_id = poison.event_id;
    let stored = store
        .append(factum_core::store::AppendRequest::new(
            Tab::TYPE,
            "tab-poison",
            factum_core::ExpectedVersion::NoStream,
            vec![poison],
        ))
        .await
        .unwrap();
    let poison_position = stored[0].position;
    engine
        .create_with_id("tab-b", &"Bob".to_owned(), &ctx)
        .await
        .unwrap();
    let views: Arc<dyn ViewStore> = store.clone().into_view_store().expect("keeps views");
    let projector = Projector::<TabSummary>::new(store.clone(), views.clone())
        .with_batch_size(10)
        .with_max_attempts(3);

    // The batch fails; the good event before the poison one is applied on its own.
    assert_eq!(projector.run_once().await.unwrap(), 1);
    assert_eq!(
        projector.lag().await.unwrap().checkpoint,
        poison_position - 1
    );
    let failed = projector.run_once().await;
    assert!(
        matches!(failed, Err(factum_core::Error::Serialization { .. })),
        "{failed:?}"
    );
    assert!(projector.parked().await.unwrap().is_empty());
    // Third attempt: parked, and the events after it are applied.
    assert_eq!(projector.run_once().await.unwrap(), 2);
    let parked = projector.parked().await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    let entry = &parked[0];
    assert_eq!(
        (entry.position, entry.event_id, entry.attempts),
        (poison_position, poison_id, 3)
    );
    assert_eq!(
        (
            entry.projection.as_str(),
            entry.aggregate_id.as_str(),
            entry.version
        ),
        (TabSummary::TYPE, "tab-poison", 1)
    );
    assert!(entry.error.contains("Opened"), "{}", entry.error);
    assert_eq!(projector.lag().await.unwrap().behind(), 0);
    for tab in ["tab-a", "tab-b"] {
        assert!(
            views
                .get_view(TabSummary::TYPE, tab)
                .await
                .unwrap()
                .is_some(),
            "{tab}"
        );
    }
    assert!(
        views
            .get_view(TabSummary::TYPE, "tab-poison")
            .await
            .unwrap()
            .is_none()
    );

    // Later events still project; nothing new is parked.
    engine
        .update(
            "tab-b",
            &TabCommand::Add {
                name: "tea".into(),
                price: 250,
            },
            &ctx,
        )
        .await
        .unwrap();
    projector.catch_up(|_| {}).await.unwrap();
    let record = views
        .get_view(TabSummary::TYPE, "tab-b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.version, 2);
    assert_eq!(projector.parked().await.unwrap().len(), 1);

    // Another projector (a restart) sees the same durable entry; a rebuild parks it afresh.
    let restarted = Projector::<TabSummary>::new(store.clone(), views.clone()).with_max_attempts(2);
    assert_eq!(restarted.parked().await.unwrap(), parked);
    restarted.rebuild(|_| {}).await.unwrap();
    let again = restarted.parked().await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].position, again[0].attempts), (poison_position, 2));
    assert_eq!(
        all_records(&*views, TabSummary::TYPE, TabSummary::fields())
            .await
            .len(),
        2
    );
}
