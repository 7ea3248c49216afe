//! The read side, [`ProjectionStore`], derived from the events when read:
//! nothing is stored but the events, so the projections can never disagree
//! with them, in this process or another. That is how this backend keeps the
//! port's "atomic projections" promise, since postgres-es commits the events
//! in a transaction of its own, where no projection row could go.
//!
//! The price: a summary replays its promotion's stream, and a customer's
//! coupons are found by scanning an index over the grab events. Fine for an
//! example; a production backend writes projection rows in the events'
//! transaction (seckill-postgres does).

use async_trait::async_trait;
use cqrs_es::Aggregate;
use seckill_app::{EventStore, ProjectionStore, PromotionSummary, StoreError};
use seckill_domain::{Coupon, CustomerId, Promotion, PromotionEvent, PromotionId};

use crate::error::from_sqlx;
use crate::events::{decode, serialized};
use crate::PgEsBackend;

/// Customer $2's grabs, oldest first, through `events_by_coupon_holder`
/// (the `event_type` condition is the index's own, so it is used).
const COUPONS_OF: &str = "
SELECT aggregate_id, sequence, event_type, event_version, payload, metadata
FROM events
WHERE aggregate_type = $1
  AND event_type = 'CouponGrabbed'
  AND payload -> 'CouponGrabbed' -> 'coupon' ->> 'customer_id' = $2
ORDER BY position";

/// The streams of every promotion without a `PromotionFinished` event, one
/// after another, in one statement (so one consistent read).
const UNFINISHED: &str = "
SELECT aggregate_id, sequence, event_type, event_version, payload, metadata
FROM events e
WHERE aggregate_type = $1
  AND NOT EXISTS (
      SELECT 1 FROM events f
      WHERE f.aggregate_type = e.aggregate_type
        AND f.aggregate_id = e.aggregate_id
        AND f.event_type = 'PromotionFinished')
ORDER BY aggregate_id, sequence";

/// Whether stream $2 has events after sequence $3.
const MOVED_PAST: &str = "
SELECT EXISTS (
    SELECT 1 FROM events
    WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3)";

#[async_trait]
impl ProjectionStore for PgEsBackend {
    async fn coupons_of(&self, customer: &CustomerId) -> Result<Vec<Coupon>, StoreError> {
        let rows = sqlx::query(COUPONS_OF)
            .bind(Promotion::TYPE)
            .bind(customer.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| from_sqlx("finding coupons", e, self.statement_timeout))?;
        let mut coupons = Vec::with_capacity(rows.len());
        for row in &rows {
            if let PromotionEvent::CouponGrabbed { coupon, .. } = decode(&serialized(row)?)? {
                coupons.push(coupon);
            }
        }
        Ok(coupons)
    }

    async fn promotion(
        &self,
        promotion_id: PromotionId,
    ) -> Result<Option<PromotionSummary>, StoreError> {
        Ok(summary(&self.load_events(promotion_id, 0).await?))
    }

    async fn unfinished_promotions(&self) -> Result<Vec<PromotionSummary>, StoreError> {
        let rows = sqlx::query(UNFINISHED)
            .bind(Promotion::TYPE)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| from_sqlx("listing promotions", e, self.statement_timeout))?;
        // Rows come stream by stream: replay each run of one aggregate id.
        let mut summaries = Vec::new();
        let mut stream: Vec<PromotionEvent> = Vec::new();
        let mut current = None;
        for row in &rows {
            let stored = serialized(row)?;
            if current.as_ref() != Some(&stored.aggregate_id) {
                summaries.extend(summary(&stream));
                stream.clear();
                current = Some(stored.aggregate_id.clone());
            }
            stream.push(decode(&stored)?);
        }
        summaries.extend(summary(&stream));
        Ok(summaries)
    }

    /// Nothing is stored to replace: what is read is always the events'.
    async fn replace_projection(
        &self,
        _summary: &PromotionSummary,
        _coupons: &[Coupon],
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// Nothing is stored to replace, but the answer still tells the truth
    /// the caller asks for: `false` when the stream has moved past what the
    /// rebuild read, so a stale rebuild knows it was stale.
    async fn replace_projection_if_current(
        &self,
        summary: &PromotionSummary,
        _coupons: &[Coupon],
    ) -> Result<bool, StoreError> {
        let last = i64::try_from(summary.last_sequence).map_err(StoreError::backend)?;
        let moved: bool = sqlx::query_scalar(MOVED_PAST)
            .bind(Promotion::TYPE)
            .bind(summary.promotion_id.to_string())
            .bind(last)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| from_sqlx("reading a stream's head", e, self.statement_timeout))?;
        Ok(!moved)
    }
}

/// A promotion's summary after `events`, its whole stream; `None` for a
/// stream that does not create one (an empty one: an unknown promotion).
fn summary(events: &[PromotionEvent]) -> Option<PromotionSummary> {
    let mut promotion = Promotion::default();
    for event in events.iter().cloned() {
        promotion.apply(event);
    }
    PromotionSummary::of(&promotion, events.len() as u64)
}
