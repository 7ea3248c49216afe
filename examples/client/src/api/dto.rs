//! The JSON bodies of the HTTP API: camelCase, as in the Java original.
//!
//! Requests are read into plain types first (numbers, strings, times) and
//! then parsed into the domain's value types, so "does not parse" (400) and
//! "breaks a rule" (422) stay two different answers.

use chrono::{DateTime, Duration, Utc};
use seckill_app::{PositionedEvent, PromotionView};
use seckill_domain::{
    Allocation, Coupon, CouponCount, CustomerId, Discount, PromotionId, PromotionName,
    PromotionStatus, PromotionTerms, ValueError,
};

use super::DrawDto;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// How long a promotion runs when the request names no finish time.
pub const DEFAULT_RUN: Duration = Duration::days(1);

/// The body of `POST /admin/promotions/` and `PUT /admin/promotions/{id}`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromotionRequest {
    /// Coupons offered: 1 to 10,000,000.
    #[schema(example = 100, minimum = 1, maximum = 10_000_000)]
    #[serde(deserialize_with = "whole_number")]
    pub number_of_coupons: u64,
    /// The fraction of the price a holder pays, in (0, 1]: 0.8 means "pay 80 %".
    #[schema(example = 0.8, exclusive_minimum = 0.0, maximum = 1.0)]
    pub discount: f64,
    /// When grabbing opens (RFC 3339).
    pub publish_time: DateTime<Utc>,
    /// When grabbing closes (RFC 3339, exclusive). Default: `publishTime` + 1 day.
    #[serde(default)]
    pub finish_time: Option<DateTime<Utc>>,
    /// A display name, 1 to 200 characters.
    #[serde(default)]
    #[schema(
        example = "Singles' Day",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: Option<String>,
    /// Set, the promotion allocates by draw: customers enter
    /// (`POST /command/entries/`) until this time (RFC 3339, from
    /// `publishTime` to `finishTime`), and then it is drawn. Absent: first
    /// come, first get.
    #[serde(default)]
    pub draw_closes_at: Option<DateTime<Utc>>,
}

impl PromotionRequest {
    /// Parses the request into the domain's terms.
    pub fn into_terms(self) -> Result<PromotionTerms, ValueError> {
        let terms = PromotionTerms::new(
            CouponCount::new(self.number_of_coupons)?,
            Discount::new(self.discount)?,
            self.publish_time,
            self.finish_time
                .unwrap_or_else(|| default_finish(self.publish_time)),
            self.name.map(PromotionName::parse).transpose()?,
        )?;
        match self.draw_closes_at {
            Some(closes_at) => terms.with_allocation(Allocation::Draw { closes_at }),
            None => Ok(terms),
        }
    }
}

/// A count written as a JSON integer, or as a number with no fraction
/// (`100.0`): JSON Schema calls both an integer, and so do Jackson's
/// defaults, which the Java original's clients were written against.
/// Anything else (`-1`, `2.5`, `"7"`) does not parse.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct WholeNumber;

    impl serde::de::Visitor<'_> for WholeNumber {
        type Value = u64;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a non-negative whole number")
        }

        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }

        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<u64, E> {
            u64::try_from(value)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(value), &self))
        }

        fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<u64, E> {
            // 2^53: beyond it not every whole number is a distinct f64, and
            // every count we accept is far below it anyway.
            const EXACT: f64 = 9_007_199_254_740_992.0;
            if value.fract() == 0.0 && (0.0..=EXACT).contains(&value) {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(value as u64)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(value), &self))
            }
        }
    }

    deserializer.deserialize_any(WholeNumber)
}

/// `publishTime` + [`DEFAULT_RUN`], saturating at the latest time there is,
/// so a publish time at the end of the calendar cannot overflow (the
/// promotion's schedule rules then refuse it with a 422).
fn default_finish(publish_time: DateTime<Utc>) -> DateTime<Utc> {
    publish_time
        .checked_add_signed(DEFAULT_RUN)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The body of `POST /command/coupons/` (a grab) and of
/// `POST /command/entries/` (an entry into a draw).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrabRequest {
    /// The promotion to grab from (a UUID).
    #[schema(example = "67e55044-10b1-426f-9247-bb680e5fe0c8", format = Uuid)]
    pub promotion_id: String,
    /// Who grabs: 1 to 64 bytes, no control characters, no surrounding spaces.
    /// (JSON Schema counts characters, not bytes: `maxLength` is the bound
    /// for ASCII ids; the pattern says the rest. The same literal describes
    /// the `customerId` path parameter in `routes.rs`.)
    #[schema(
        example = "alice",
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    pub customer_id: String,
}

impl GrabRequest {
    /// Parses the request. A promotion id that is not a UUID does not parse
    /// (400); a customer id that breaks its rule is invalid (422).
    pub fn parse(self) -> Result<(PromotionId, CustomerId), ValueError> {
        Ok((
            self.promotion_id.parse()?,
            CustomerId::parse(self.customer_id)?,
        ))
    }
}

/// A coupon a customer holds.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CouponDto {
    /// The promotion that granted it.
    pub promotion_id: Uuid,
    /// Its place in grab order, from 1.
    #[schema(example = 1)]
    pub number: u32,
    /// Who holds it.
    #[schema(example = "alice")]
    pub customer_id: String,
    /// The discount it carries.
    #[schema(example = 0.8)]
    pub discount: f64,
    /// When the grab was requested.
    pub grabbed_at: DateTime<Utc>,
}

impl From<Coupon> for CouponDto {
    fn from(coupon: Coupon) -> Self {
        Self {
            promotion_id: *coupon.promotion_id.as_uuid(),
            number: coupon.number,
            customer_id: coupon.customer_id.into(),
            discount: coupon.discount.get(),
            grabbed_at: coupon.grabbed_at,
        }
    }
}

/// Where a promotion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusDto {
    /// Created; grabbing opens at `publishTime`.
    Upcoming,
    /// Open for grabs.
    Active,
    /// Every coupon was granted.
    SoldOut,
    /// The finish time passed.
    Expired,
    /// Closed early by an admin.
    Cancelled,
    /// Drawn: every winner of the draw holds a coupon.
    Drawn,
}

impl From<PromotionStatus> for StatusDto {
    fn from(status: PromotionStatus) -> Self {
        match status {
            PromotionStatus::Upcoming => Self::Upcoming,
            PromotionStatus::Active => Self::Active,
            PromotionStatus::SoldOut => Self::SoldOut,
            PromotionStatus::Expired => Self::Expired,
            PromotionStatus::Cancelled => Self::Cancelled,
            PromotionStatus::Drawn => Self::Drawn,
        }
    }
}

/// One promotion as the query side sees it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionDto {
    /// Its id.
    pub promotion_id: Uuid,
    /// The same id again, for clients of the Java original, which read `id`.
    pub id: Uuid,
    /// Its display name, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// Coupons offered.
    #[schema(example = 100)]
    pub number_of_coupons: u32,
    /// Coupons left.
    #[schema(example = 58)]
    pub remaining: u32,
    /// Coupons granted so far.
    #[schema(example = 42)]
    pub granted: u32,
    /// The discount each coupon carries.
    #[schema(example = 0.8)]
    pub discount: f64,
    /// When grabbing opens.
    pub publish_time: DateTime<Utc>,
    /// When grabbing closes.
    pub finish_time: DateTime<Utc>,
    /// Where it stands at the time of the answer.
    pub status: StatusDto,
    /// When it finished (sold out, expired, cancelled or drawn), once
    /// recorded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// For a promotion that allocates by draw: where the draw stands.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub draw: Option<DrawDto>,
}

impl From<PromotionView> for PromotionDto {
    fn from(view: PromotionView) -> Self {
        let summary = view.summary;
        let id = *summary.promotion_id.as_uuid();
        Self {
            promotion_id: id,
            id,
            granted: summary.granted(),
            name: summary.name,
            number_of_coupons: summary.number_of_coupons,
            remaining: summary.remaining,
            discount: summary.discount,
            publish_time: summary.publish_time,
            finish_time: summary.finish_time,
            status: view.status.into(),
            finished_at: summary.finished_at,
            draw: summary.draw.as_deref().map(DrawDto::from),
        }
    }
}

/// One event of the global feed (`GET /events`): its place in the global
/// order and in its promotion's stream, and the event in its stored form.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedEventDto {
    /// Its position in the global order, also the SSE `id`: reconnect with
    /// it as `Last-Event-ID` to resume after it.
    #[schema(example = 42)]
    pub position: u64,
    /// The promotion whose stream holds it.
    pub promotion_id: Uuid,
    /// Its number in that stream, from 1.
    #[schema(example = 3)]
    pub sequence: u64,
    /// Its type, also the SSE `event`: `PromotionCreated`,
    /// `PromotionUpdated`, `CouponGrabbed`, `PromotionFinished`,
    /// `DrawEntered` or `PromotionDrawn`.
    #[schema(example = "CouponGrabbed")]
    pub event_type: String,
    /// The event as the store keeps it (pinned by the domain's tests): one
    /// member, named by its type, holding its fields in snake case.
    #[schema(value_type = Object, example = json!({"CouponGrabbed": {"coupon": {
        "promotion_id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "number": 1,
        "customer_id": "alice", "discount": 0.8, "grabbed_at": "2030-11-11T00:00:01Z"},
        "remaining": 99}}))]
    pub event: serde_json::Value,
}

impl FeedEventDto {
    /// The feed's form of `positioned`, or why its event would not serialise
    /// (which no `PromotionEvent` does; the caller decides what to send).
    pub fn try_from_event(positioned: &PositionedEvent) -> Result<Self, serde_json::Error> {
        let event = serde_json::to_value(&positioned.event)?;
        // The stored form is externally tagged: `{"CouponGrabbed": {..}}`.
        let event_type = event
            .as_object()
            .and_then(|members| members.keys().next())
            .cloned()
            .unwrap_or_default();
        Ok(Self {
            position: positioned.position,
            promotion_id: *positioned.promotion_id.as_uuid(),
            sequence: positioned.sequence,
            event_type,
            event,
        })
    }
}

/// One coupon in the sync feed: the original's `CouponInfo` (`id`,
/// `customerId`, `promotionId`, `time`, `discount`) plus its number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncCouponDto {
    /// The cursor: the grab's position in the global order. Ask for the next
    /// page with the last `id` you got.
    #[schema(example = 42)]
    pub id: u64,
    /// Who holds it.
    #[schema(example = "alice")]
    pub customer_id: String,
    /// The promotion that granted it.
    pub promotion_id: Uuid,
    /// When it was grabbed.
    pub time: DateTime<Utc>,
    /// The discount it carries.
    #[schema(example = 0.8)]
    pub discount: f64,
    /// Its place in the promotion's grab order, from 1.
    #[schema(example = 1)]
    pub number: u32,
}
