//! The write side: [`EventStore`] on the postgres-es `events` and `snapshots`
//! tables.

use async_trait::async_trait;
use seckill_app::draw::DrawKey;
use seckill_app::{Commit, EventStore, PositionedEvent, Snapshot, StoreError};
use seckill_domain::{Promotion, PromotionEvent, PromotionId};

use crate::error::Corrupt;
use crate::rows::{from_db, to_db};
use crate::store::PgStore;
use crate::upcast::{aggregate_type, decode, StoredEvent};

const LOAD_EVENTS: &str = include_str!("../sql/load_events.sql");
const LOAD_SNAPSHOT: &str = include_str!("../sql/load_snapshot.sql");
const SAVE_SNAPSHOT: &str = include_str!("../sql/save_snapshot.sql");
const PROMOTION_IDS: &str = include_str!("../sql/promotion_ids.sql");
const DRAW_KEY: &str = include_str!("../sql/draw_key.sql");

#[async_trait]
impl EventStore for PgStore {
    async fn load_events(
        &self,
        promotion_id: PromotionId,
        after: u64,
    ) -> Result<Vec<PromotionEvent>, StoreError> {
        let aggregate_id = promotion_id.to_string();
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(LOAD_EVENTS)
            .bind(aggregate_type())
            .bind(&aggregate_id)
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| {
                self.error(format!("loading the events of promotion {promotion_id}"), e)
            })?;
        let mut events = Vec::with_capacity(rows.len());
        // The engine counts events to know its position, so a hole in the
        // stream must stop it rather than shift every later sequence.
        for (next, (sequence, event_type, event_version, payload)) in (after + 1..).zip(rows) {
            let sequence = from_db(sequence);
            if sequence != next {
                return Err(StoreError::CorruptEvent {
                    aggregate_type: aggregate_type().to_owned(),
                    aggregate_id,
                    sequence,
                    reason: format!("the stream has a gap: event #{next} is missing"),
                });
            }
            let stored = StoredEvent {
                sequence,
                event_type,
                event_version,
                payload,
            };
            events.push(decode(&aggregate_id, stored)?);
        }
        Ok(events)
    }

    async fn append(&self, commit: &Commit) -> Result<(), StoreError> {
        crate::write::append(self, &[commit])
            .await
            .pop()
            .unwrap_or_else(|| Err(StoreError::backend("the write path answered no commit")))
    }

    fn groups_commits(&self) -> bool {
        true
    }

    async fn append_group(&self, commits: &[&Commit]) -> Vec<Result<(), StoreError>> {
        crate::write::append(self, commits).await
    }

    async fn load_snapshot(
        &self,
        promotion_id: PromotionId,
    ) -> Result<Option<Snapshot>, StoreError> {
        let aggregate_id = promotion_id.to_string();
        let doing = || format!("loading the snapshot of promotion {promotion_id}");
        let mut connection = self
            .pool
            .acquire()
            .await
            .map_err(|e| self.error(doing(), e))?;
        let fetched: Result<Option<(i64, String)>, _> = sqlx::query_as(LOAD_SNAPSHOT)
            .bind(aggregate_type())
            .bind(&aggregate_id)
            .fetch_optional(&mut *connection)
            .await;
        // A snapshot is one row of tens of megabytes for a big sale; the
        // connection's buffers grew to carry it and would keep that size in
        // the pool for good. (sqlx 0.8 gives back the read side's spare
        // capacity; the write side of `save_snapshot` is the big one.)
        sqlx::Connection::shrink_buffers(&mut *connection);
        drop(connection);
        let row = fetched.map_err(|e| self.error(doing(), e))?;
        let Some((sequence, payload)) = row else {
            return Ok(None);
        };
        let sequence = from_db(sequence);
        let corrupt = |reason: String| {
            StoreError::backend(Corrupt::Snapshot {
                aggregate_type: aggregate_type().to_owned(),
                aggregate_id: aggregate_id.clone(),
                sequence,
                reason,
            })
        };
        let promotion: Promotion =
            serde_json::from_str(&payload).map_err(|e| corrupt(e.to_string()))?;
        if let Some(other) = promotion.id().filter(|id| *id != promotion_id) {
            return Err(corrupt(format!("it holds promotion {other}")));
        }
        Ok(Some(Snapshot {
            promotion,
            sequence,
        }))
    }

    async fn save_snapshot(
        &self,
        promotion_id: PromotionId,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let payload = serde_json::to_string(&snapshot.promotion).map_err(StoreError::backend)?;
        let doing = || format!("saving a snapshot of promotion {promotion_id}");
        let mut connection = self
            .pool
            .acquire()
            .await
            .map_err(|e| self.error(doing(), e))?;
        let saved = sqlx::query(SAVE_SNAPSHOT)
            .bind(aggregate_type())
            .bind(promotion_id.to_string())
            .bind(to_db(snapshot.sequence)?)
            .bind(payload)
            .execute(&mut *connection)
            .await;
        // The connection's write buffer grew to the snapshot's size (tens of
        // megabytes for a big sale); sqlx keeps it unless told, and every
        // pooled connection that ever saved one would hold that much.
        sqlx::Connection::shrink_buffers(&mut *connection);
        saved.map_err(|e| self.error(doing(), e))?;
        Ok(())
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<PositionedEvent>, StoreError> {
        crate::feed::read_all(self, after, limit).await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        crate::feed::head_position(self).await
    }

    async fn promotion_ids(&self) -> Result<Vec<PromotionId>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(PROMOTION_IDS)
            .bind(aggregate_type())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error("listing the promotions", e))?;
        let mut ids = rows
            .into_iter()
            .map(|aggregate_id| {
                aggregate_id.parse::<PromotionId>().map_err(|_| {
                    StoreError::backend(Corrupt::AggregateId {
                        aggregate_type: aggregate_type().to_owned(),
                        aggregate_id,
                    })
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    async fn draw_key(&self) -> Result<DrawKey, StoreError> {
        // A fresh key is offered at every ask; the table keeps the first.
        let offered = DrawKey::random().map_err(StoreError::backend)?;
        let kept: Vec<u8> = sqlx::query_scalar(DRAW_KEY)
            .bind(offered.as_bytes().as_slice())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.error("reading the draw key", e))?;
        let bytes: [u8; 32] = kept.try_into().map_err(|_| {
            StoreError::backend(Corrupt::Projection {
                table: "seckill_draw_key",
                key: "singleton".to_owned(),
                reason: "the key is not 32 bytes".to_owned(),
            })
        })?;
        Ok(DrawKey::from_bytes(bytes))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let check = async {
            let mut connection = self.pool.acquire().await?;
            crate::writable::check(&mut connection).await
        };
        // However it fails, the store is not ready to serve; the answer says
        // why, a read-only server included.
        match tokio::time::timeout(self.ping_timeout, check).await {
            Ok(Ok(None)) => Ok(()),
            Ok(Ok(Some(why))) => {
                self.writable.suspect();
                Err(StoreError::unavailable(format!(
                    "PostgreSQL answers, but {why}"
                )))
            }
            // No connection, and the pool refused the last one it made: the
            // reason is that refusal, not the timeout it ended in.
            failed => match (self.writable.recent_refusal(), failed) {
                (Some(why), _) => Err(StoreError::unavailable(format!(
                    "no connection to a PostgreSQL that takes writes; the last one was refused: {why}"
                ))),
                (None, Ok(Err(e))) => Err(StoreError::unavailable(crate::error::Failed::new(
                    "pinging PostgreSQL",
                    e,
                ))),
                (None, _) => Err(StoreError::unavailable(format!(
                    "PostgreSQL did not answer within {:?}",
                    self.ping_timeout
                ))),
            },
        }
    }
}
