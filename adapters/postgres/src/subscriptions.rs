//! Durable subscriptions on PostgreSQL: leases and checkpoints in the
//! `subscriptions` table (migration 0007), and [`Transactional`] delivery,
//! where the handler writes in the transaction that moves the checkpoint.

use std::time::Duration;

use async_trait::async_trait;
use seckill_app::subscription::{
    Delivery, DeliveryFailure, HandlerError, SubscriptionLease, SubscriptionStore,
};
use seckill_app::{PositionedEvent, StoreError};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::rows::{from_db, to_db};
use crate::store::PgStore;

const CLAIM: &str = include_str!("../sql/claim_subscription.sql");
const SAVE: &str = include_str!("../sql/save_checkpoint.sql");
const LOCK: &str = include_str!("../sql/lock_checkpoint.sql");
const RELEASE: &str = include_str!("../sql/release_subscription.sql");
const CHECKPOINT: &str = include_str!("../sql/checkpoint.sql");

#[async_trait]
impl SubscriptionStore for PgStore {
    async fn claim_subscription(
        &self,
        name: &str,
        consumer: Uuid,
        lease: Duration,
        start: u64,
    ) -> Result<Option<SubscriptionLease>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(CLAIM)
            .bind(name)
            .bind(consumer)
            .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
            .bind(to_db(start)?)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(format!("claiming subscription {name}"), e))?;
        Ok(row.map(|(epoch, position)| SubscriptionLease {
            name: name.to_owned(),
            consumer,
            epoch: from_db(epoch),
            checkpoint: from_db(position),
        }))
    }

    async fn save_checkpoint(
        &self,
        lease: &SubscriptionLease,
        position: u64,
    ) -> Result<bool, StoreError> {
        let failed = |e| self.error(format!("saving the checkpoint of {}", lease.name), e);
        let mut connection = self.pool.acquire().await.map_err(failed)?;
        save(&mut connection, lease, position)
            .await?
            .map_err(failed)
    }

    async fn release_subscription(&self, lease: &SubscriptionLease) -> Result<(), StoreError> {
        sqlx::query(RELEASE)
            .bind(&lease.name)
            .bind(lease.consumer)
            .bind(to_db(lease.epoch)?)
            .execute(&self.pool)
            .await
            .map_err(|e| self.error(format!("releasing subscription {}", lease.name), e))?;
        Ok(())
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let position: Option<i64> = sqlx::query_scalar(CHECKPOINT)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(format!("reading the checkpoint of {name}"), e))?;
        Ok(position.map(from_db))
    }
}

/// Moves the checkpoint under `lease`, on `connection` (in or out of a
/// transaction). `Ok(Ok(false))`: the lease is no longer current.
async fn save(
    connection: &mut PgConnection,
    lease: &SubscriptionLease,
    position: u64,
) -> Result<Result<bool, sqlx::Error>, StoreError> {
    let query = sqlx::query(SAVE)
        .bind(&lease.name)
        .bind(lease.consumer)
        .bind(to_db(lease.epoch)?)
        .bind(to_db(position)?);
    Ok(query
        .execute(connection)
        .await
        .map(|done| done.rows_affected() == 1))
}

/// A handler that writes to PostgreSQL in the transaction that also moves
/// its subscription's checkpoint: its effects and the checkpoint commit
/// together, so each event takes effect exactly once.
#[async_trait]
pub trait TransactionalHandler: Send + Sync + 'static {
    /// Handles one event inside `transaction`. An error rolls back the
    /// whole batch; the event is retried after a backoff.
    async fn handle(
        &self,
        transaction: &mut PgConnection,
        event: &PositionedEvent,
    ) -> Result<(), HandlerError>;
}

/// Exactly-once delivery for a [`TransactionalHandler`]; from
/// [`PgStore::transactional`], run it with `SubscriptionBuilder::run_with`.
///
/// Each batch is one transaction: it locks the subscription's row (only
/// under the current lease, else nothing is done), runs the handler for
/// every event, moves the checkpoint, and commits. A takeover waits for the
/// lock, so two consumers never both apply a batch.
pub struct Transactional<H> {
    store: PgStore,
    handler: H,
}

impl PgStore {
    /// Exactly-once delivery to `handler`, in this store's transactions.
    pub fn transactional<H: TransactionalHandler>(&self, handler: H) -> Transactional<H> {
        Transactional {
            store: self.clone(),
            handler,
        }
    }
}

#[async_trait]
impl<H: TransactionalHandler> Delivery for Transactional<H> {
    async fn deliver(
        &self,
        lease: &SubscriptionLease,
        events: &[PositionedEvent],
    ) -> Result<(), DeliveryFailure> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let store = &self.store;
        let failed =
            |e| DeliveryFailure::Store(store.error(format!("delivering {}", lease.name), e));
        let mut transaction = store.pool.begin().await.map_err(failed)?;
        let held: Option<i64> = sqlx::query_scalar(LOCK)
            .bind(&lease.name)
            .bind(lease.consumer)
            .bind(to_db(lease.epoch).map_err(DeliveryFailure::Store)?)
            .fetch_optional(&mut *transaction)
            .await
            .map_err(failed)?;
        let Some(position) = held else {
            return Err(DeliveryFailure::Fenced);
        };
        let position = from_db(position);
        // Events at or below the stored checkpoint were applied by an
        // earlier holder; applying them again would apply them twice.
        for (index, event) in events.iter().enumerate() {
            if event.position <= position {
                continue;
            }
            if let Err(error) = self.handler.handle(&mut transaction, event).await {
                // Dropping the transaction rolls the batch back.
                return Err(DeliveryFailure::Handler {
                    checkpointed: 0,
                    failed_at: index,
                    error,
                });
            }
        }
        let saved = save(&mut transaction, lease, last.position)
            .await
            .map_err(DeliveryFailure::Store)?;
        if !saved.map_err(failed)? {
            return Err(DeliveryFailure::Fenced);
        }
        transaction.commit().await.map_err(failed)?;
        Ok(())
    }
}
