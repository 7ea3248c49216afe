//! The global feed: every promotion's events in position order, read so that
//! a follower never skips one (positions in commit order: migration 0008,
//! ADR 0011).

use seckill_app::{PositionedEvent, StoreError};

use crate::rows::from_db;
use crate::store::PgStore;
use crate::upcast::{aggregate_type, decode, StoredEvent};

const READ_ALL: &str = include_str!("../sql/read_all.sql");

/// The events after global position `after`, at most `limit`, only below
/// the oldest transaction still in flight.
pub(crate) async fn read_all(
    store: &PgStore,
    after: u64,
    limit: usize,
) -> Result<Vec<PositionedEvent>, StoreError> {
    type Row = (i64, String, i64, String, String, String, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(READ_ALL)
        .bind(aggregate_type())
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&store.pool)
        .await
        .map_err(|e| store.error(format!("reading the events after position {after}"), e))?;
    rows.into_iter()
        .map(
            |(
                position,
                aggregate_id,
                sequence,
                event_type,
                event_version,
                payload,
                traceparent,
            )| {
                let promotion_id = aggregate_id.parse().map_err(|_| StoreError::CorruptEvent {
                    aggregate_type: aggregate_type().to_owned(),
                    aggregate_id: aggregate_id.clone(),
                    sequence: from_db(sequence),
                    reason: "the aggregate id is not a promotion id".to_owned(),
                })?;
                let stored = StoredEvent {
                    sequence: from_db(sequence),
                    event_type,
                    event_version,
                    payload,
                };
                Ok(PositionedEvent {
                    position: from_db(position),
                    promotion_id,
                    sequence: from_db(sequence),
                    event: decode(&aggregate_id, stored)?,
                    traceparent,
                })
            },
        )
        .collect()
}

const HEAD_POSITION: &str = include_str!("../sql/head_position.sql");

/// The newest position [`read_all`] can reach now.
pub(crate) async fn head_position(store: &PgStore) -> Result<u64, StoreError> {
    let head: i64 = sqlx::query_scalar(HEAD_POSITION)
        .bind(aggregate_type())
        .fetch_one(&store.pool)
        .await
        .map_err(|e| store.error("reading the head of the global feed", e))?;
    Ok(from_db(head))
}
