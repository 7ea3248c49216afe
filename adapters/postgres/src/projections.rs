//! The read side: [`ProjectionStore`] on the `coupons` and
//! `promotion_summaries` tables, and the column encoding that appends share.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use seckill_app::{ProjectionStore, PromotionSummary, StoreError};
use seckill_domain::{Coupon, CustomerId, Discount, FinishReason, PromotionId};
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::{Query, QueryScalar};
use sqlx::{Encode, Type};
use uuid::Uuid;

use crate::error::Corrupt;
use crate::events::to_db;
use crate::store::PgStore;

const COUPONS_OF: &str = include_str!("../sql/coupons_of.sql");
const PROMOTION: &str = include_str!("../sql/promotion.sql");
const UNFINISHED_PROMOTIONS: &str = include_str!("../sql/unfinished_promotions.sql");
const REPLACE_PROJECTION: &str = include_str!("../sql/replace_projection.sql");

/// A query that takes positional parameters, whatever it returns.
pub(crate) trait Binds<'q>: Sized {
    fn push<T: 'q + Encode<'q, Postgres> + Type<Postgres>>(self, value: T) -> Self;
}

impl<'q> Binds<'q> for Query<'q, Postgres, PgArguments> {
    fn push<T: 'q + Encode<'q, Postgres> + Type<Postgres>>(self, value: T) -> Self {
        self.bind(value)
    }
}

impl<'q, O> Binds<'q> for QueryScalar<'q, Postgres, O, PgArguments> {
    fn push<T: 'q + Encode<'q, Postgres> + Type<Postgres>>(self, value: T) -> Self {
        self.bind(value)
    }
}

/// Coupons as one array per column, for an `INSERT ... SELECT FROM unnest(..)`
/// that writes any number of them in one statement.
#[derive(Debug, Default)]
pub(crate) struct CouponColumns<'c> {
    numbers: Vec<i32>,
    customers: Vec<&'c str>,
    discounts: Vec<f64>,
    grabbed_at: Vec<DateTime<Utc>>,
}

impl<'c> CouponColumns<'c> {
    pub(crate) fn of(coupons: impl Iterator<Item = &'c Coupon>) -> Result<Self, StoreError> {
        let mut columns = Self::default();
        for coupon in coupons {
            columns.numbers.push(to_int(coupon.number)?);
            columns.customers.push(coupon.customer_id.as_str());
            columns.discounts.push(coupon.discount.get());
            columns.grabbed_at.push(coupon.grabbed_at);
        }
        Ok(columns)
    }

    /// Binds the four arrays, in column order.
    pub(crate) fn bind<'q, Q: Binds<'q>>(&'q self, query: Q) -> Q {
        query
            .push(&self.numbers)
            .push(&self.customers)
            .push(&self.discounts)
            .push(&self.grabbed_at)
    }
}

/// A [`PromotionSummary`] as the `promotion_summaries` columns hold it.
#[derive(Debug)]
pub(crate) struct SummaryRow<'s> {
    name: Option<&'s str>,
    number_of_coupons: i32,
    remaining: i32,
    discount: f64,
    publish_time: DateTime<Utc>,
    finish_time: DateTime<Utc>,
    finish_reason: Option<&'static str>,
    finished_at: Option<DateTime<Utc>>,
    last_sequence: i64,
}

impl<'s> SummaryRow<'s> {
    pub(crate) fn of(summary: &'s PromotionSummary) -> Result<Self, StoreError> {
        Ok(Self {
            name: summary.name.as_deref(),
            number_of_coupons: to_int(summary.number_of_coupons)?,
            remaining: to_int(summary.remaining)?,
            discount: summary.discount,
            publish_time: summary.publish_time,
            finish_time: summary.finish_time,
            finish_reason: summary.finish_reason.map(FinishReason::as_str),
            finished_at: summary.finished_at,
            last_sequence: to_db(summary.last_sequence)?,
        })
    }

    /// Binds every column but the promotion id, in column order.
    pub(crate) fn bind<'q, Q: Binds<'q>>(&'q self, query: Q) -> Q {
        query
            .push(self.name)
            .push(self.number_of_coupons)
            .push(self.remaining)
            .push(self.discount)
            .push(self.publish_time)
            .push(self.finish_time)
            .push(self.finish_reason)
            .push(self.finished_at)
            .push(self.last_sequence)
    }
}

/// Coupon numbers and counts are at most `CouponCount::MAX`, far below
/// `i32::MAX`; the check only guards against a future change of that bound.
fn to_int(value: u32) -> Result<i32, StoreError> {
    i32::try_from(value)
        .map_err(|_| StoreError::backend(format!("{value} does not fit an integer column")))
}

type CouponRecord = (Uuid, i32, String, f64, DateTime<Utc>);

type SummaryRecord = (
    Uuid,
    Option<String>,
    i32,
    i32,
    f64,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<String>,
    Option<DateTime<Utc>>,
    i64,
);

fn corrupt(table: &'static str, key: Uuid, reason: impl ToString) -> StoreError {
    StoreError::backend(Corrupt::Projection {
        table,
        key: key.to_string(),
        reason: reason.to_string(),
    })
}

fn coupon_from(row: CouponRecord) -> Result<Coupon, StoreError> {
    let (promotion_id, number, customer_id, discount, grabbed_at) = row;
    let bad = |reason: String| corrupt("coupons", promotion_id, reason);
    Ok(Coupon {
        promotion_id: PromotionId::from_uuid(promotion_id),
        number: u32::try_from(number).map_err(|_| bad(format!("coupon number {number}")))?,
        customer_id: CustomerId::parse(customer_id).map_err(|e| bad(e.to_string()))?,
        discount: Discount::new(discount).map_err(|e| bad(e.to_string()))?,
        grabbed_at,
    })
}

fn summary_from(row: SummaryRecord) -> Result<PromotionSummary, StoreError> {
    let (
        promotion_id,
        name,
        number_of_coupons,
        remaining,
        discount,
        publish_time,
        finish_time,
        finish_reason,
        finished_at,
        last_sequence,
    ) = row;
    let bad = |reason: String| corrupt("promotion_summaries", promotion_id, reason);
    let count = |value: i32| u32::try_from(value).map_err(|_| bad(format!("count {value}")));
    let finish_reason = match finish_reason.as_deref() {
        None => None,
        Some("sold_out") => Some(FinishReason::SoldOut),
        Some("expired") => Some(FinishReason::Expired),
        Some("cancelled") => Some(FinishReason::Cancelled),
        Some(other) => return Err(bad(format!("finish reason {other:?}"))),
    };
    Ok(PromotionSummary {
        promotion_id: PromotionId::from_uuid(promotion_id),
        name,
        number_of_coupons: count(number_of_coupons)?,
        remaining: count(remaining)?,
        discount,
        publish_time,
        finish_time,
        finish_reason,
        finished_at,
        last_sequence: u64::try_from(last_sequence)
            .map_err(|_| bad(format!("last sequence {last_sequence}")))?,
    })
}

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
        let promotion_id = summary.promotion_id;
        let doing = || format!("replacing the projection of promotion {promotion_id}");
        let columns = CouponColumns::of(coupons.iter())?;
        let row = SummaryRow::of(summary)?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.error(doing(), e))?;
        sqlx::query("DELETE FROM coupons WHERE promotion_id = $1")
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
        Ok(())
    }
}
