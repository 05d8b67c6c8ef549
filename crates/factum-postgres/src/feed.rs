//! Reading the store-wide feed below the read horizon: `read_all` and `head_position`. The
//! [`store`](crate::store) module explains why positions below the horizon are final.
//!
//! A reader never returns an event above the horizon, but it waits, briefly, for the horizon
//! to pass what was committed when it was called: an append that returned before a read began
//! is then in that read (unless a transaction older than it stays open longer than
//! [`MAX_WAIT`], when the read returns what is final and the next one goes on from there).

use std::time::{Duration, Instant};

use factum_core::store::StoredEvent;
use sqlx::Row;

use crate::error::database_error;
use crate::rows::{clamp_usize, stored_event, to_u64};
use crate::writer::Inner;

type CoreResult<T> = factum_core::Result<T>;

/// How long a read waits at most for older transactions still open to end.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(1);

/// The first pause between two looks at the horizon; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_micros(500);
const MAX_PAUSE: Duration = Duration::from_millis(16);

/// The horizon (positions below it are final) and the greatest committed position, seen by
/// one snapshot.
#[derive(Debug, Clone, Copy)]
struct Horizon {
    below: i64,
    head: i64,
}

impl Inner {
    async fn horizon(&self) -> CoreResult<Horizon> {
        let row = sqlx::query(self.sql.horizon.clone())
            .fetch_one(&self.pool)
            .await
            .map_err(database_error)?;
        Ok(Horizon {
            below: row.try_get("horizon").map_err(database_error)?,
            head: row.try_get("head").map_err(database_error)?,
        })
    }

    /// The first horizon above `target` (the head when the caller came), or the last one
    /// seen after [`MAX_WAIT`]; `None` when nothing above `after` is committed at all.
    async fn horizon_past(&self, after: i64) -> CoreResult<Option<Horizon>> {
        let started = Instant::now();
        let mut pause = FIRST_PAUSE;
        let mut target = None;
        loop {
            let horizon = self.horizon().await?;
            if horizon.head <= after {
                return Ok(None);
            }
            let target = *target.get_or_insert(horizon.head);
            if horizon.below > target || started.elapsed() >= MAX_WAIT {
                return Ok(Some(horizon));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    async fn read_below(
        &self,
        after: i64,
        limit: usize,
        below: i64,
    ) -> CoreResult<Vec<StoredEvent>> {
        let rows = sqlx::query(self.sql.read_all_below.clone())
            .bind(after)
            .bind(clamp_usize(limit))
            .bind(below)
            .fetch_all(&self.pool)
            .await
            .map_err(database_error)?;
        rows.iter()
            .map(|row| stored_event(row).map_err(Into::into))
            .collect()
    }

    /// Events above `after`, in position order, at most `limit` (> 0), all below the horizon.
    /// A full page needs one round trip; a short one looks whether events committed before
    /// the call wait behind the horizon, and if so waits for them.
    pub(crate) async fn read_all(&self, after: i64, limit: usize) -> CoreResult<Vec<StoredEvent>> {
        let rows = sqlx::query(self.sql.read_all.clone())
            .bind(after)
            .bind(clamp_usize(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(database_error)?;
        let mut page = rows
            .iter()
            .map(|row| stored_event(row).map_err(Into::into))
            .collect::<CoreResult<Vec<_>>>()?;
        if page.len() >= limit {
            return Ok(page);
        }
        let last = match page.last() {
            // Positions come from bigint columns.
            Some(event) => i64::try_from(event.position).unwrap_or(i64::MAX),
            None => after,
        };
        if let Some(horizon) = self.horizon_past(last).await? {
            let more = self
                .read_below(last, limit - page.len(), horizon.below)
                .await?;
            page.extend(more);
        }
        Ok(page)
    }

    /// The greatest position below the horizon, once the horizon has passed the head of the
    /// moment of the call (or [`MAX_WAIT`] has passed).
    pub(crate) async fn head(&self) -> CoreResult<u64> {
        let Some(horizon) = self.horizon_past(0).await? else {
            return Ok(0);
        };
        let head = if horizon.head < horizon.below {
            horizon.head
        } else {
            sqlx::query_scalar(self.sql.head_below.clone())
                .bind(horizon.below)
                .fetch_one(&self.pool)
                .await
                .map_err(database_error)?
        };
        to_u64(head, "head position").map_err(Into::into)
    }
}
