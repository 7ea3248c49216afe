//! Rows: how domain values become column values and back. Both ports use
//! them (an append writes coupons and a summary like a projection rebuild
//! does), so they live here rather than in either port's module.

use chrono::{DateTime, Utc};
use seckill_app::{PromotionSummary, StoreError};
use seckill_domain::{Coupon, CustomerId, Discount, FinishReason, PromotionId};
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::{Query, QueryScalar};
use sqlx::{Encode, Type};
use uuid::Uuid;

use crate::error::Corrupt;

/// A sequence number as the `bigint` column holds it.
pub(crate) fn to_db(sequence: u64) -> Result<i64, StoreError> {
    i64::try_from(sequence)
        .map_err(|_| StoreError::backend(format!("sequence {sequence} does not fit a bigint")))
}

/// A `bigint` sequence column back; the schema's CHECK keeps it >= 0.
pub(crate) fn from_db(sequence: i64) -> u64 {
    u64::try_from(sequence).unwrap_or_default()
}

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
            columns.push(coupon)?;
        }
        Ok(columns)
    }

    /// Adds one coupon to the end of every column.
    pub(crate) fn push(&mut self, coupon: &'c Coupon) -> Result<(), StoreError> {
        self.numbers.push(to_int(coupon.number)?);
        self.customers.push(coupon.customer_id.as_str());
        self.discounts.push(coupon.discount.get());
        self.grabbed_at.push(coupon.grabbed_at);
        Ok(())
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

/// [`PromotionSummary`]s, one array per `promotion_summaries` column but the
/// promotion id, as `seckill_upsert_summaries` (migration 0011) takes them:
/// the one place in Rust that lists the summary's columns.
#[derive(Debug, Default)]
pub(crate) struct SummaryColumns<'s> {
    name: Vec<Option<&'s str>>,
    number_of_coupons: Vec<i32>,
    remaining: Vec<i32>,
    discount: Vec<f64>,
    publish_time: Vec<DateTime<Utc>>,
    finish_time: Vec<DateTime<Utc>>,
    finish_reason: Vec<Option<&'static str>>,
    finished_at: Vec<Option<DateTime<Utc>>>,
    last_sequence: Vec<i64>,
    draw: Vec<Option<String>>,
}

impl<'s> SummaryColumns<'s> {
    /// One summary's columns.
    pub(crate) fn of(summary: &'s PromotionSummary) -> Result<Self, StoreError> {
        let mut columns = Self::default();
        columns.push(summary)?;
        Ok(columns)
    }

    /// Adds one summary to the end of every column.
    pub(crate) fn push(&mut self, summary: &'s PromotionSummary) -> Result<(), StoreError> {
        // Converted first, so a value that does not fit leaves every column
        // as it was.
        let number_of_coupons = to_int(summary.number_of_coupons)?;
        let remaining = to_int(summary.remaining)?;
        let last_sequence = to_db(summary.last_sequence)?;
        let draw = summary
            .draw
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(StoreError::backend)?;
        self.name.push(summary.name.as_deref());
        self.number_of_coupons.push(number_of_coupons);
        self.remaining.push(remaining);
        self.discount.push(summary.discount);
        self.publish_time.push(summary.publish_time);
        self.finish_time.push(summary.finish_time);
        self.finish_reason
            .push(summary.finish_reason.map(FinishReason::as_str));
        self.finished_at.push(summary.finished_at);
        self.last_sequence.push(last_sequence);
        self.draw.push(draw);
        Ok(())
    }

    /// Binds the ten arrays, in the order of the function's parameters.
    pub(crate) fn bind<'q, Q: Binds<'q>>(&'q self, query: Q) -> Q {
        query
            .push(&self.name)
            .push(&self.number_of_coupons)
            .push(&self.remaining)
            .push(&self.discount)
            .push(&self.publish_time)
            .push(&self.finish_time)
            .push(&self.finish_reason)
            .push(&self.finished_at)
            .push(&self.last_sequence)
            .push(&self.draw)
    }
}

/// Coupon numbers and counts are at most `CouponCount::MAX`, far below
/// `i32::MAX`; the check only guards against a future change of that bound.
pub(crate) fn to_int(value: u32) -> Result<i32, StoreError> {
    i32::try_from(value)
        .map_err(|_| StoreError::backend(format!("{value} does not fit an integer column")))
}

pub(crate) type CouponRecord = (Uuid, i32, String, f64, DateTime<Utc>);

pub(crate) type SummaryRecord = (
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
    Option<String>,
);

fn corrupt(table: &'static str, key: Uuid, reason: impl ToString) -> StoreError {
    StoreError::backend(Corrupt::Projection {
        table,
        key: key.to_string(),
        reason: reason.to_string(),
    })
}

pub(crate) fn coupon_from(row: CouponRecord) -> Result<Coupon, StoreError> {
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

pub(crate) fn summary_from(row: SummaryRecord) -> Result<PromotionSummary, StoreError> {
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
        draw,
    ) = row;
    let bad = |reason: String| corrupt("promotion_summaries", promotion_id, reason);
    let count = |value: i32| u32::try_from(value).map_err(|_| bad(format!("count {value}")));
    let finish_reason = finish_reason
        .as_deref()
        .map(str::parse::<FinishReason>)
        .transpose()
        .map_err(|e| bad(e.to_string()))?;
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
        draw: draw
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| bad(format!("draw: {e}")))?,
    })
}
