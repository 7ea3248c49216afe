//! [`SubscriptionStore`]: one row per subscription name in `subscriptions`,
//! holding its checkpoint and the lease of the one consumer that may move it.
//! Each call is one statement, so concurrent consumers need no locking of
//! ours: PostgreSQL's row locks decide.

use std::time::Duration;

use async_trait::async_trait;
use seckill_app::subscription::{SubscriptionLease, SubscriptionStore};
use seckill_app::StoreError;
use uuid::Uuid;

use crate::error::from_sqlx;
use crate::PgEsBackend;

/// Claims name $1 for consumer $2 until $3 milliseconds from now, or renews
/// the claim; a new name starts at position $4. Answers the epoch and the
/// checkpoint, or no row while another consumer's lease runs.
///
/// The claim succeeds when the row is new, or held by this consumer, or
/// released (consumer NULL), or its lease has lapsed. The epoch stays when
/// the holder renews and grows by one whenever the name changes hands (`IS
/// DISTINCT FROM`, so a released row counts as another hand). Two consumers
/// claiming at once are safe: `ON CONFLICT` locks the row and checks the
/// `WHERE` against its newest version, so only one of them gets it.
const CLAIM: &str = "
INSERT INTO subscriptions AS s (name, position, consumer, epoch, expires_at)
VALUES ($1, $4, $2, 1, now() + $3 * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE
    SET consumer = EXCLUDED.consumer,
        epoch = s.epoch + CASE WHEN s.consumer IS DISTINCT FROM EXCLUDED.consumer THEN 1 ELSE 0 END,
        expires_at = EXCLUDED.expires_at
    WHERE s.consumer = EXCLUDED.consumer OR s.consumer IS NULL OR s.expires_at <= now()
RETURNING epoch, position";

/// Moves name $1's checkpoint forward to $4, only under the current lease
/// (consumer $2, epoch $3): a consumer that lost the name, even one whose
/// lease merely lapsed and was taken, matches no row and moves nothing.
/// Never backwards (`GREATEST`).
const SAVE_CHECKPOINT: &str = "
UPDATE subscriptions
SET position = GREATEST(position, $4)
WHERE name = $1 AND consumer = $2 AND epoch = $3";

/// Gives name $1 up if consumer $2 holds it under epoch $3, so a standby's
/// next claim takes it at once instead of waiting for the lease to lapse.
const RELEASE: &str = "
UPDATE subscriptions
SET consumer = NULL, expires_at = NULL
WHERE name = $1 AND consumer = $2 AND epoch = $3";

/// Name $1's checkpoint, if it was ever claimed.
const CHECKPOINT: &str = "SELECT position FROM subscriptions WHERE name = $1";

#[async_trait]
impl SubscriptionStore for PgEsBackend {
    async fn claim_subscription(
        &self,
        name: &str,
        consumer: Uuid,
        lease: Duration,
        start: u64,
    ) -> Result<Option<SubscriptionLease>, StoreError> {
        let lease_ms = i64::try_from(lease.as_millis()).map_err(StoreError::backend)?;
        let start = i64::try_from(start).map_err(StoreError::backend)?;
        let claimed: Option<(i64, i64)> = sqlx::query_as(CLAIM)
            .bind(name)
            .bind(consumer)
            .bind(lease_ms)
            .bind(start)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| from_sqlx("claiming a subscription", e, self.statement_timeout))?;
        Ok(claimed.map(|(epoch, checkpoint)| SubscriptionLease {
            name: name.to_owned(),
            consumer,
            epoch: epoch as u64,
            checkpoint: checkpoint as u64,
        }))
    }

    async fn save_checkpoint(
        &self,
        lease: &SubscriptionLease,
        position: u64,
    ) -> Result<bool, StoreError> {
        let position = i64::try_from(position).map_err(StoreError::backend)?;
        self.under_lease(
            SAVE_CHECKPOINT,
            lease,
            Some(position),
            "saving a checkpoint",
        )
        .await
    }

    async fn release_subscription(&self, lease: &SubscriptionLease) -> Result<(), StoreError> {
        self.under_lease(RELEASE, lease, None, "releasing a subscription")
            .await
            .map(drop)
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let position: Option<i64> = sqlx::query_scalar(CHECKPOINT)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| from_sqlx("reading a checkpoint", e, self.statement_timeout))?;
        Ok(position.map(|p| p as u64))
    }
}

impl PgEsBackend {
    /// Runs `sql`, an update that names the lease as $1..$3 (and `position`
    /// as $4), and answers whether the lease was current (a row matched).
    async fn under_lease(
        &self,
        sql: &'static str,
        lease: &SubscriptionLease,
        position: Option<i64>,
        doing: &'static str,
    ) -> Result<bool, StoreError> {
        let epoch = i64::try_from(lease.epoch).map_err(StoreError::backend)?;
        let mut query = sqlx::query(sql)
            .bind(&lease.name)
            .bind(lease.consumer)
            .bind(epoch);
        if let Some(position) = position {
            query = query.bind(position);
        }
        let done = query
            .execute(&self.pool)
            .await
            .map_err(|e| from_sqlx(doing, e, self.statement_timeout))?;
        Ok(done.rows_affected() == 1)
    }
}
