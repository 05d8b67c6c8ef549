//! The small domain the view cases and the engine's tests run on: bar tabs, their commands
//! and events, and two views of them (one record per tab, one per item). Its errors are
//! typed (a missing tab is `TAB_MISSING`), and `ItemAdded` is at schema version 2 (schema 1
//! stored the price as `cents`), for the upcasting tests.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use factum_core::{
    Aggregate, CommandHandler, CqrsContext, Event, EventEnvelope, FieldKind, View, ViewField,
    ViewKind, define_domain_errors,
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
        /// No such tab.
        Missing { id: String } = (3, 404, "TAB_MISSING", "no tab {id}"),
    }
}

/// What happens to a bar tab.
#[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TabEvent {
    /// The tab was opened.
    Opened {
        /// Whose tab it is.
        owner: String,
    },
    /// An item was put on the tab.
    #[event(version = 2)]
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

/// A bar tab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tab {
    id: String,
    owner: String,
    items: BTreeMap<u32, i64>,
    next_item: u32,
    paid: bool,
}

impl Tab {
    /// What the items on the tab cost together, in cents.
    pub fn total(&self) -> i64 {
        self.items.values().sum()
    }
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

    fn not_found_error(id: &str) -> Option<TabError> {
        Some(TabError::Missing { id: id.to_owned() })
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
