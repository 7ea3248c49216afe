//! The write side, [`EventStore`]: appends and stream loads go through
//! postgres-es's repository; the global feed, the head and the list of
//! promotions are this crate's own queries on the same table.

use async_trait::async_trait;
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use seckill_app::draw::DrawKey;
use seckill_app::{Commit, EventStore, PositionedEvent, StoreError};
use seckill_domain::{Promotion, PromotionEvent, PromotionId};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::error::{from_repository, from_sqlx};
use crate::PgEsBackend;

/// Every promotion's events after position $2, in position order, at most $3.
/// Inserts run one transaction at a time (see the trigger in schema.sql), so
/// every position below a visible one is visible too, or never will be.
const READ_ALL: &str = "
SELECT position, aggregate_id, sequence, event_type, event_version, payload, metadata
FROM events
WHERE aggregate_type = $1 AND position > $2
ORDER BY position
LIMIT $3";

/// The last committed position.
const HEAD_POSITION: &str =
    "SELECT coalesce(max(position), 0) FROM events WHERE aggregate_type = $1";

/// The draw key: $1 kept if none is yet; the kept one answered.
const DRAW_KEY: &str = "
WITH offered AS (
    INSERT INTO draw_key (key) VALUES ($1) ON CONFLICT (singleton) DO NOTHING RETURNING key
)
SELECT key FROM offered UNION ALL SELECT key FROM draw_key LIMIT 1";

/// Every promotion with events.
const PROMOTION_IDS: &str = "SELECT DISTINCT aggregate_id FROM events WHERE aggregate_type = $1";

#[async_trait]
impl EventStore for PgEsBackend {
    async fn load_events(
        &self,
        promotion_id: PromotionId,
        after: u64,
    ) -> Result<Vec<PromotionEvent>, StoreError> {
        // postgres-es's `last_sequence` reads "sequence > last_sequence",
        // which is exactly the port's `after`.
        let after = usize::try_from(after).map_err(StoreError::backend)?;
        self.repository
            .get_last_events::<Promotion>(&promotion_id.to_string(), after)
            .await
            .map_err(|e| from_repository("loading events", e, self.statement_timeout))?
            .iter()
            .map(decode)
            .collect()
    }

    async fn append(&self, commit: &Commit) -> Result<(), StoreError> {
        let id = commit.promotion_id.to_string();
        let mut events = Vec::with_capacity(commit.events.len());
        for ((sequence, event), index) in (commit.expected_sequence + 1..)
            .zip(&commit.events)
            .zip(0..)
        {
            // Its command's traceparent in the metadata, as seckill-postgres
            // writes it, so the feed hands it back.
            let metadata = match commit.traceparent(index) {
                Some(traceparent) => serde_json::json!({ "traceparent": traceparent }),
                None => serde_json::json!({}),
            };
            events.push(SerializedEvent::new(
                id.clone(),
                usize::try_from(sequence).map_err(StoreError::backend)?,
                Promotion::TYPE.to_owned(),
                event.event_type(),
                event.event_version(),
                serde_json::to_value(event).map_err(StoreError::backend)?,
                metadata,
            ));
        }
        // One transaction of postgres-es's own. The commit's summary and
        // coupons are not written: the projections are read from the events.
        match self.repository.persist::<Promotion>(&events, None).await {
            Ok(()) => Ok(()),
            // A unique violation: another writer added one of these sequence
            // numbers first, or (the trigger) the stream is not at
            // `expected_sequence`. Either way nothing was written.
            Err(PersistenceError::OptimisticLockError) => Err(StoreError::Conflict {
                promotion_id: commit.promotion_id,
                expected: commit.expected_sequence,
            }),
            Err(other) => Err(from_repository(
                "appending events",
                other,
                self.statement_timeout,
            )),
        }
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<PositionedEvent>, StoreError> {
        let after = i64::try_from(after).map_err(StoreError::backend)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = sqlx::query(READ_ALL)
            .bind(Promotion::TYPE)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| from_sqlx("reading the feed", e, self.statement_timeout))?;
        rows.iter()
            .map(|row| {
                let stored = serialized(row)?;
                Ok(PositionedEvent {
                    position: column::<i64>(row, "position")? as u64,
                    promotion_id: promotion_id(&stored.aggregate_id)?,
                    sequence: stored.sequence as u64,
                    event: decode(&stored)?,
                    traceparent: stored
                        .metadata
                        .get("traceparent")
                        .and_then(|value| value.as_str())
                        .map(str::to_owned),
                })
            })
            .collect()
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        let head: i64 = sqlx::query_scalar(HEAD_POSITION)
            .bind(Promotion::TYPE)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| from_sqlx("reading the head position", e, self.statement_timeout))?;
        Ok(head as u64)
    }

    async fn promotion_ids(&self) -> Result<Vec<PromotionId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(PROMOTION_IDS)
            .bind(Promotion::TYPE)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| from_sqlx("listing promotions", e, self.statement_timeout))?;
        ids.iter().map(|id| promotion_id(id)).collect()
    }

    async fn draw_key(&self) -> Result<DrawKey, StoreError> {
        let offered = DrawKey::random().map_err(StoreError::backend)?;
        let kept: Vec<u8> = sqlx::query_scalar(DRAW_KEY)
            .bind(offered.as_bytes().as_slice())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| from_sqlx("reading the draw key", e, self.statement_timeout))?;
        let bytes: [u8; 32] = kept
            .try_into()
            .map_err(|_| StoreError::backend("the kept draw key is not 32 bytes"))?;
        Ok(DrawKey::from_bytes(bytes))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| from_sqlx("ping", e, self.statement_timeout))
    }
}

/// One row of `events` as postgres-es hands it out, from a query of ours
/// that selects its columns.
pub(crate) fn serialized(row: &PgRow) -> Result<SerializedEvent, StoreError> {
    Ok(SerializedEvent::new(
        column(row, "aggregate_id")?,
        column::<i64>(row, "sequence")? as usize,
        Promotion::TYPE.to_owned(),
        column(row, "event_type")?,
        column(row, "event_version")?,
        column(row, "payload")?,
        column(row, "metadata")?,
    ))
}

fn column<'r, T>(row: &'r PgRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(name).map_err(StoreError::backend)
}

/// A stored event back as a [`PromotionEvent`]. Every way a row can be wrong
/// is a [`StoreError::CorruptEvent`] naming it, never a panic: the events
/// outlive the code that wrote them. (Events whose JSON changes need an
/// upcaster here; seckill-postgres shows one.)
pub(crate) fn decode(stored: &SerializedEvent) -> Result<PromotionEvent, StoreError> {
    let corrupt = |reason: String| StoreError::CorruptEvent {
        aggregate_type: stored.aggregate_type.clone(),
        aggregate_id: stored.aggregate_id.clone(),
        sequence: stored.sequence as u64,
        reason,
    };
    if stored.event_version != PromotionEvent::VERSION {
        return Err(corrupt(format!(
            "event_version {:?}, and this code reads {:?}",
            stored.event_version,
            PromotionEvent::VERSION
        )));
    }
    let event: PromotionEvent =
        serde_json::from_value(stored.payload.clone()).map_err(|e| corrupt(e.to_string()))?;
    if event.event_type() != stored.event_type {
        return Err(corrupt(format!(
            "event_type {:?} but the payload is a {}",
            stored.event_type,
            event.type_name()
        )));
    }
    Ok(event)
}

/// A stream's aggregate id as a promotion id.
pub(crate) fn promotion_id(aggregate_id: &str) -> Result<PromotionId, StoreError> {
    aggregate_id.parse().map_err(|e| {
        StoreError::backend(format!(
            "promotion stream {aggregate_id:?} has an id that is not a promotion id: {e}"
        ))
    })
}
