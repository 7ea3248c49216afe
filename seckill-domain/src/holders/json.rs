//! How a snapshot writes a promotion's holders, and reads them back.
//!
//! Written as one `[customer, number, seconds, nanoseconds]` array per
//! holder, in number order: snapshots of big sales are mostly this list,
//! and integers parse several times faster than RFC 3339 strings inside one
//! object per holder. Reading accepts that list in any order (builds before
//! the compact set wrote it in hash order), and the first format, an object
//! keyed by customer (`{"alice": {"number": 1, "grabbed_at": "…"}}`), so
//! every snapshot saved before still loads. Either way the numbers must be
//! exactly 1..=n and no customer may be listed twice: anything else is a
//! corrupt snapshot, since the set's layout (and the next coupon number)
//! follows from the numbers.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{Error as _, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use super::HolderSet;
use crate::error::ValueError;
use crate::value::CustomerId;

/// Why stored holders do not make a holder set.
#[derive(Debug, Clone, PartialEq, Error)]
pub(crate) enum CorruptHolders {
    /// A customer id that `CustomerId::parse` refuses.
    #[error(transparent)]
    Customer(#[from] ValueError),
    /// A time chrono cannot represent.
    #[error("{seconds} s {nanos} ns is not a time")]
    NotATime {
        /// Seconds since the Unix epoch, as stored.
        seconds: i64,
        /// Nanoseconds within that second, as stored.
        nanos: u32,
    },
    /// Two holdings for one customer: "the last one wins" would under-count
    /// the coupons granted and hand a number out again.
    #[error("customer {0:?} is listed twice")]
    CustomerTwice(String),
    /// Two customers with one coupon number.
    #[error("coupon number {0} is listed twice")]
    NumberTwice(u32),
    /// Coupon numbers start at 1.
    #[error("coupon number 0 does not exist: numbers start at 1")]
    NumberZero,
    /// A number between 1 and the count is missing (so another one is
    /// larger than the count).
    #[error(
        "coupon number {missing} is missing: {listed} holders must hold the numbers 1 to {listed}"
    )]
    NumberMissing {
        /// The smallest number nobody holds.
        missing: u32,
        /// How many holders were listed.
        listed: usize,
    },
}

impl Serialize for HolderSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for holder in self.iter() {
            let at = holder.grabbed_at;
            seq.serialize_element(&(
                holder.customer,
                holder.number,
                at.timestamp(),
                at.timestamp_subsec_nanos(),
            ))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for HolderSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(HoldersVisitor)?
            .into_set()
            .map_err(D::Error::custom)
    }
}

/// More than this is not reserved up front, whatever the input claims.
const MAX_RESERVE: usize = 1 << 20;

struct HoldersVisitor;

impl<'de> Visitor<'de> for HoldersVisitor {
    type Value = Listed;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(
            "a list of [customer, number, seconds, nanoseconds], or a map of customer to holding",
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Listed, A::Error> {
        let mut listed = Listed::with_capacity(seq.size_hint());
        while let Some((customer, number, seconds, nanos)) =
            seq.next_element::<(Text<'de>, u32, i64, u32)>()?
        {
            let grabbed_at = DateTime::from_timestamp(seconds, nanos)
                .ok_or(CorruptHolders::NotATime { seconds, nanos })
                .map_err(A::Error::custom)?;
            listed
                .push(&customer.0, number, grabbed_at)
                .map_err(A::Error::custom)?;
        }
        Ok(listed)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Listed, A::Error> {
        let mut listed = Listed::with_capacity(map.size_hint());
        while let Some((customer, holding)) = map.next_entry::<Text<'de>, FirstFormat>()? {
            listed
                .push(&customer.0, holding.number, holding.grabbed_at)
                .map_err(A::Error::custom)?;
        }
        Ok(listed)
    }
}

/// A holding in the first snapshot format, keyed by its customer.
#[derive(Deserialize)]
struct FirstFormat {
    number: u32,
    grabbed_at: DateTime<Utc>,
}

/// A customer id as the input has it: borrowed when it can be (any id
/// without escapes, read from a string), so reading a snapshot does not
/// allocate once per holder.
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a customer id")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(text)))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(text)))
    }
}

/// Holders as read, before they are put in number order and checked.
struct Listed {
    /// Their ids back to back, so staging them allocates nothing per holder.
    text: String,
    holders: Vec<ListedHolder>,
}

struct ListedHolder {
    start: usize,
    end: usize,
    number: u32,
    grabbed_at: DateTime<Utc>,
}

impl Listed {
    /// Room for what the input announces, up to `MAX_RESERVE` holders.
    fn with_capacity(hint: Option<usize>) -> Self {
        let holders = hint.unwrap_or(0).min(MAX_RESERVE);
        Self {
            // Most ids are under 16 bytes.
            text: String::with_capacity(holders * 16),
            holders: Vec::with_capacity(holders),
        }
    }

    fn push(
        &mut self,
        customer: &str,
        number: u32,
        grabbed_at: DateTime<Utc>,
    ) -> Result<(), CorruptHolders> {
        CustomerId::check(customer)?;
        let start = self.text.len();
        self.text.push_str(customer);
        self.holders.push(ListedHolder {
            start,
            end: self.text.len(),
            number,
            grabbed_at,
        });
        Ok(())
    }

    /// The holder set, if the numbers are exactly 1..=n and every customer
    /// is listed once.
    pub(super) fn into_set(mut self) -> Result<HolderSet, CorruptHolders> {
        // In order already when this build wrote it; a hash order before.
        if !self.holders.is_sorted_by_key(|holder| holder.number) {
            self.holders.sort_unstable_by_key(|holder| holder.number);
        }
        let listed = self.holders.len();
        let mut set = HolderSet::with_capacity(listed);
        for (holder, expected) in self.holders.iter().zip(1u32..) {
            match holder.number {
                0 => return Err(CorruptHolders::NumberZero),
                // Sorted, so a smaller number is the one before it again.
                number if number < expected => return Err(CorruptHolders::NumberTwice(number)),
                number if number > expected => {
                    return Err(CorruptHolders::NumberMissing {
                        missing: expected,
                        listed,
                    })
                }
                _ => {}
            }
            let customer = self.text.get(holder.start..holder.end).unwrap_or_default();
            set.insert(customer, holder.grabbed_at)
                .map_err(|_| CorruptHolders::CustomerTwice(customer.to_owned()))?;
        }
        Ok(set)
    }
}

#[cfg(test)]
pub(super) fn listed(holders: &[(&str, u32, DateTime<Utc>)]) -> Result<HolderSet, CorruptHolders> {
    let mut listed = Listed::with_capacity(Some(holders.len()));
    for &(customer, number, grabbed_at) in holders {
        listed.push(customer, number, grabbed_at)?;
    }
    listed.into_set()
}
