//! The read side: [`ProjectionStore`] on the `coupons` and
//! `promotion_summaries` tables.

use async_trait::async_trait;
use seckill_app::{ProjectionStore, PromotionSummary, StoreError};
use seckill_domain::{Coupon, CustomerId, PromotionId};

use crate::rows::{
    coupon_from, summary_from, CouponColumns, CouponRecord, SummaryColumns, SummaryRecord,
};
use crate::store::PgStore;

const COUPONS_OF: &str = include_str!("../sql/coupons_of.sql");
const PROMOTION: &str = include_str!("../sql/promotion.sql");
const UNFINISHED_PROMOTIONS: &str = include_str!("../sql/unfinished_promotions.sql");
const REPLACE_PROJECTION: &str = include_str!("../sql/replace_projection.sql");
const DELETE_COUPONS: &str = include_str!("../sql/delete_coupons.sql");
const LOCK_SUMMARY: &str = include_str!("../sql/lock_summary.sql");
const STREAM_HEAD: &str = include_str!("../sql/stream_head.sql");

#[async_trait]
impl ProjectionStore for PgStore {
    async fn coupons_of(&self, customer: &CustomerId) -> Result<Vec<Coupon>, StoreError> {
        let rows: Vec<CouponRecord> = sqlx::query_as(COUPONS_OF)
            .bind(customer.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(format!("loading the coupons of customer {customer}"), e))?;
        rows.into_iter().map(coupon_from).collect()
    }

    async fn promotion(
        &self,
        promotion_id: PromotionId,
    ) -> Result<Option<PromotionSummary>, StoreError> {
        let row: Option<SummaryRecord> = sqlx::query_as(PROMOTION)
            .bind(promotion_id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(format!("loading promotion {promotion_id}"), e))?;
        row.map(summary_from).transpose()
    }

    async fn unfinished_promotions(&self) -> Result<Vec<PromotionSummary>, StoreError> {
        let rows: Vec<SummaryRecord> = sqlx::query_as(UNFINISHED_PROMOTIONS)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error("loading the unfinished promotions", e))?;
        rows.into_iter().map(summary_from).collect()
    }

    async fn replace_projection(
        &self,
        summary: &PromotionSummary,
        coupons: &[Coupon],
    ) -> Result<(), StoreError> {
        self.replace(summary, coupons, false).await.map(drop)
    }

    async fn replace_projection_if_current(
        &self,
        summary: &PromotionSummary,
        coupons: &[Coupon],
    ) -> Result<bool, StoreError> {
        self.replace(summary, coupons, true).await
    }
}

impl PgStore {
    /// Replaces one promotion's projection in one transaction; with
    /// `if_current`, only if its stream has not moved past the summary.
    async fn replace(
        &self,
        summary: &PromotionSummary,
        coupons: &[Coupon],
        if_current: bool,
    ) -> Result<bool, StoreError> {
        let promotion_id = summary.promotion_id;
        let doing = || format!("replacing the projection of promotion {promotion_id}");
        let columns = CouponColumns::of(coupons.iter())?;
        let row = SummaryColumns::of(summary)?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.error(doing(), e))?;
        // Lock out appends, then look at the stream. A live writer (here or
        // on another replica) may have appended since the events were read;
        // its coupons are not in `coupons`, and replacing would erase them.
        // And a summary must never count events its stream does not hold:
        // the write path trusts a summary that is not ahead of its stream
        // (migration 0011, ADR 0012), and would write after a missing range.
        let head = self.locked_head(&mut tx, promotion_id).await?;
        if summary.last_sequence > head {
            return Err(StoreError::backend(format!(
                "refusing the projection of promotion {promotion_id}: its summary counts {} events and the stream holds {head}",
                summary.last_sequence
            )));
        }
        if if_current && head != summary.last_sequence {
            tracing::info!(promotion = %promotion_id, rebuilt = summary.last_sequence, "projection not replaced: the stream moved on");
            return Ok(false);
        }
        sqlx::query(DELETE_COUPONS)
            .bind(promotion_id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.error(doing(), e))?;
        let query = sqlx::query(REPLACE_PROJECTION).bind(promotion_id.as_uuid());
        row.bind(columns.bind(query))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.error(doing(), e))?;
        // Dropping `tx` on an early return rolls it back.
        tx.commit().await.map_err(|e| self.error(doing(), e))?;
        Ok(true)
    }

    /// The stream's head, with appends to the promotion held off until `tx`
    /// ends.
    async fn locked_head(
        &self,
        tx: &mut sqlx::PgConnection,
        promotion_id: PromotionId,
    ) -> Result<u64, StoreError> {
        let doing = || format!("checking the stream head of promotion {promotion_id}");
        sqlx::query(LOCK_SUMMARY)
            .bind(promotion_id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.error(doing(), e))?;
        let head: i64 = sqlx::query_scalar(STREAM_HEAD)
            .bind(promotion_id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.error(doing(), e))?;
        Ok(u64::try_from(head).unwrap_or(0))
    }
}
