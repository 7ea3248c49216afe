//! Value types of the flash-sale domain, parsed once at the edge so the rest of
//! the code never checks them again ("parse, don't validate").
//!
//! Every type here deserialises through its parser too, so a malformed command
//! or a stored event cannot smuggle an invalid value past the rules.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::draw::Allocation;
use crate::error::ValueError;

/// The identity of one promotion: the aggregate id of its event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PromotionId(Uuid);

impl PromotionId {
    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID behind this id.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl fmt::Display for PromotionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for PromotionId {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| ValueError::PromotionId(truncate(s)))
    }
}

/// The identity of one customer, as the caller's system knows it.
///
/// 1 to [`CustomerId::MAX_LEN`] bytes, no control characters and no leading or
/// trailing white space, so it is safe in URLs, logs and database keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
// Arc, not Box or String: one id is shared by the aggregate, its coupon, its
// event and the projections, and cloning it must not allocate on the grab path.
pub struct CustomerId(Arc<str>);

impl CustomerId {
    /// Longest accepted customer id, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Parses a customer id.
    pub fn parse(raw: impl AsRef<str>) -> Result<Self, ValueError> {
        let raw = raw.as_ref();
        Self::check(raw)?;
        Ok(Self(Arc::from(raw)))
    }

    /// Whether `raw` is a valid customer id, without making one: a snapshot
    /// checks a million ids it stores as text, not as `CustomerId`s.
    pub(crate) fn check(raw: &str) -> Result<(), ValueError> {
        // Checked on bytes first: ASCII ids (the common case) need no UTF-8 walk.
        let ascii_ok = |b: &u8| b.is_ascii() && !b.is_ascii_control();
        let valid = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.trim() == raw
            && (raw.bytes().all(|b| ascii_ok(&b)) || !raw.chars().any(char::is_control));
        if valid {
            Ok(())
        } else {
            Err(ValueError::CustomerId(truncate(raw)))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CustomerId {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for CustomerId {
    type Error = ValueError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CustomerId> for String {
    fn from(value: CustomerId) -> Self {
        value.0.as_ref().to_owned()
    }
}

/// The fraction of the price a coupon holder pays: in (0, 1].
///
/// `0.8` means the customer pays 80 %; `1.0` is a (pointless but legal) full price.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Discount(f64);

impl Discount {
    /// Parses a discount.
    pub fn new(value: f64) -> Result<Self, ValueError> {
        if value > 0.0 && value <= 1.0 {
            Ok(Self(value))
        } else {
            Err(ValueError::Discount(value))
        }
    }

    /// The fraction as a number.
    pub const fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Discount {
    type Error = ValueError;

    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Discount> for f64 {
    fn from(value: Discount) -> Self {
        value.0
    }
}

/// How many coupons a promotion offers: 1 to [`CouponCount::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u32")]
pub struct CouponCount(u32);

impl CouponCount {
    /// The largest promotion we accept. Ten million keeps one promotion's
    /// in-memory state within a few hundred megabytes.
    pub const MAX: u32 = 10_000_000;

    /// Parses a coupon count.
    pub fn new(value: u64) -> Result<Self, ValueError> {
        match u32::try_from(value) {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(ValueError::CouponCount(value)),
        }
    }

    /// The count as a number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u64> for CouponCount {
    type Error = ValueError;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<CouponCount> for u32 {
    fn from(value: CouponCount) -> Self {
        value.0
    }
}

/// A promotion's optional display name: 1 to [`PromotionName::MAX_LEN`]
/// characters, with no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PromotionName(String);

impl PromotionName {
    /// Longest accepted name, in characters.
    pub const MAX_LEN: usize = 200;

    /// Parses a name.
    pub fn parse(raw: impl Into<String>) -> Result<Self, ValueError> {
        let raw = raw.into();
        let chars = raw.chars().count();
        if chars == 0 || chars > Self::MAX_LEN || raw.chars().any(char::is_control) {
            return Err(ValueError::Name(truncate(&raw)));
        }
        Ok(Self(raw))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PromotionName {
    type Error = ValueError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<PromotionName> for String {
    fn from(value: PromotionName) -> Self {
        value.0
    }
}

/// What a promotion offers, when, and how it allocates: everything an admin
/// sets.
///
/// Built only through [`PromotionTerms::new`], which enforces that the sale
/// finishes after it is published, and [`PromotionTerms::with_allocation`],
/// which enforces that a draw closes within the sale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawTerms")]
pub struct PromotionTerms {
    number_of_coupons: CouponCount,
    discount: Discount,
    publish_time: DateTime<Utc>,
    finish_time: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<PromotionName>,
    // Left out for first come, so events stored before draws read the same.
    #[serde(skip_serializing_if = "Allocation::is_first_come")]
    allocation: Allocation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTerms {
    number_of_coupons: CouponCount,
    discount: Discount,
    publish_time: DateTime<Utc>,
    finish_time: DateTime<Utc>,
    #[serde(default)]
    name: Option<PromotionName>,
    #[serde(default)]
    allocation: Allocation,
}

impl TryFrom<RawTerms> for PromotionTerms {
    type Error = ValueError;

    fn try_from(raw: RawTerms) -> Result<Self, Self::Error> {
        Self::new(
            raw.number_of_coupons,
            raw.discount,
            raw.publish_time,
            raw.finish_time,
            raw.name,
        )?
        .with_allocation(raw.allocation)
    }
}

impl PromotionTerms {
    /// Builds terms; the finish time must come after the publish time.
    pub fn new(
        number_of_coupons: CouponCount,
        discount: Discount,
        publish_time: DateTime<Utc>,
        finish_time: DateTime<Utc>,
        name: Option<PromotionName>,
    ) -> Result<Self, ValueError> {
        if finish_time <= publish_time {
            return Err(ValueError::FinishNotAfterPublish {
                publish_time,
                finish_time,
            });
        }
        Ok(Self {
            number_of_coupons,
            discount,
            publish_time,
            finish_time,
            name,
            allocation: Allocation::FirstCome,
        })
    }

    /// The same terms allocating by `allocation`; a draw must close within
    /// the sale, at or after the publish time and at or before the finish.
    pub fn with_allocation(mut self, allocation: Allocation) -> Result<Self, ValueError> {
        if let Allocation::Draw { closes_at } = allocation {
            if closes_at < self.publish_time || closes_at > self.finish_time {
                return Err(ValueError::CloseOutsideSale {
                    closes_at,
                    publish_time: self.publish_time,
                    finish_time: self.finish_time,
                });
            }
        }
        self.allocation = allocation;
        Ok(self)
    }

    /// How many coupons are offered.
    pub const fn number_of_coupons(&self) -> CouponCount {
        self.number_of_coupons
    }

    /// The discount every coupon carries.
    pub const fn discount(&self) -> Discount {
        self.discount
    }

    /// When grabbing opens.
    pub const fn publish_time(&self) -> DateTime<Utc> {
        self.publish_time
    }

    /// When grabbing closes (exclusive).
    pub const fn finish_time(&self) -> DateTime<Utc> {
        self.finish_time
    }

    /// The optional display name.
    pub const fn name(&self) -> Option<&PromotionName> {
        self.name.as_ref()
    }

    /// How the coupons are allocated.
    pub const fn allocation(&self) -> Allocation {
        self.allocation
    }
}

/// Keeps echoed input short, so an error message never carries a megabyte.
pub(crate) fn truncate(s: &str) -> String {
    const LIMIT: usize = 80;
    if s.len() <= LIMIT {
        return s.to_owned();
    }
    let mut end = LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discount_accepts_only_the_half_open_unit_interval() {
        assert!(Discount::new(0.0).is_err());
        assert!(Discount::new(-0.1).is_err());
        assert!(Discount::new(1.01).is_err());
        assert!(Discount::new(f64::NAN).is_err());
        assert!(Discount::new(f64::INFINITY).is_err());
        assert_eq!(Discount::new(1.0).map(Discount::get), Ok(1.0));
        assert_eq!(Discount::new(0.01).map(Discount::get), Ok(0.01));
    }

    #[test]
    fn coupon_count_is_between_one_and_ten_million() {
        assert!(CouponCount::new(0).is_err());
        assert!(CouponCount::new(10_000_001).is_err());
        assert!(CouponCount::new(u64::MAX).is_err());
        assert_eq!(CouponCount::new(1).map(CouponCount::get), Ok(1));
        assert_eq!(
            CouponCount::new(10_000_000).map(CouponCount::get),
            Ok(10_000_000)
        );
    }

    #[test]
    fn customer_id_rejects_empty_padded_control_and_long_ids() {
        assert!(CustomerId::parse("").is_err());
        assert!(CustomerId::parse(" alice").is_err());
        assert!(CustomerId::parse("al\u{0}ice").is_err());
        assert!(CustomerId::parse("x".repeat(65)).is_err());
        assert!(CustomerId::parse("x".repeat(64)).is_ok());
        assert_eq!(
            CustomerId::parse("Zoë 42").map(|c| c.to_string()),
            Ok("Zoë 42".to_owned())
        );
    }

    #[test]
    fn customer_id_deserialises_through_its_parser() {
        let bad: Result<CustomerId, _> = serde_json::from_str("\"\"");
        assert!(bad.is_err());
        let good: CustomerId = serde_json::from_str("\"bob\"").expect("valid id");
        assert_eq!(good.as_str(), "bob");
    }

    #[test]
    fn terms_require_finish_after_publish() {
        let t = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("valid time");
        let count = CouponCount::new(10).expect("valid count");
        let discount = Discount::new(0.5).expect("valid discount");
        assert!(PromotionTerms::new(count, discount, t, t, None).is_err());
        assert!(
            PromotionTerms::new(count, discount, t, t - chrono::Duration::seconds(1), None)
                .is_err()
        );
        assert!(
            PromotionTerms::new(count, discount, t, t + chrono::Duration::seconds(1), None).is_ok()
        );
    }

    #[test]
    fn long_input_is_truncated_in_errors() {
        let err = CustomerId::parse("é".repeat(100)).expect_err("too long");
        assert!(err.to_string().chars().count() < 200, "{err}");
    }

    #[test]
    fn promotion_id_parses_uuids_only() {
        assert!("not-a-uuid".parse::<PromotionId>().is_err());
        let id: PromotionId = "67e55044-10b1-426f-9247-bb680e5fe0c8"
            .parse()
            .expect("valid uuid");
        assert_eq!(id.to_string(), "67e55044-10b1-426f-9247-bb680e5fe0c8");
    }
}
