//! The customers who hold a coupon of one promotion: a compact, append-only
//! set with a cheap copy (issue 14; docs/adr/0013-compact-holder-set.md).
//!
//! Coupon numbers are granted 1, 2, 3, ... in grab order, so number `n` is
//! the `n`-th holder and needs no storing: a holder's place in the arena
//! *is* its number minus one. The arena keeps ids back to back in chunks of
//! 4096 holders and seals full chunks behind an `Arc`; the index maps an id
//! to its place and, past 16,384 holders, is split into 256 tables behind
//! `Arc`s. So `clone` copies the open chunk and a few hundred pointers, and
//! a million holders take about 53 bytes each instead of 116.
//!
//! # Layout
//! * `mod.rs`   – [`HolderSet`]: the arena and the index together.
//! * `arena`    – the holders in grab order, in shared chunks.
//! * `index`    – customer id to place, in shared tables.
//! * `json`     – how a snapshot writes and reads the holders (every format).
//! * `tests`    – a property test against a `HashMap` model, snapshot cases.

use std::fmt;

use chrono::{DateTime, Utc};

mod arena;
mod index;
mod json;
#[cfg(test)]
mod tests;

use arena::Arena;
use index::Index;

/// A coupon holder as the set reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Holder<'a> {
    pub(crate) customer: &'a str,
    /// The coupon's number: the holder's place in grab order, from 1.
    pub(crate) number: u32,
    pub(crate) grabbed_at: DateTime<Utc>,
}

/// The customer asked to be added already holds coupon `number`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AlreadyHeld {
    pub(crate) number: u32,
}

/// The holders of one promotion, in grab order, each found by customer id.
#[derive(Clone, Default)]
pub(crate) struct HolderSet {
    arena: Arena,
    index: Index,
}

impl HolderSet {
    /// An empty set with index room for `holders`.
    fn with_capacity(holders: usize) -> Self {
        Self {
            arena: Arena::default(),
            index: Index::with_capacity(holders),
        }
    }

    /// How many customers hold a coupon.
    pub(crate) fn len(&self) -> usize {
        self.arena.len()
    }

    /// Whether no one is in the set.
    pub(crate) fn is_empty(&self) -> bool {
        self.arena.len() == 0
    }

    /// The holding of `customer`, if they hold a coupon.
    pub(crate) fn get(&self, customer: &str) -> Option<Holder<'_>> {
        let place = self.index.find(&self.arena, customer)?;
        Some(Holder {
            customer: self.arena.customer(place)?,
            number: place + 1,
            grabbed_at: self.arena.grabbed_at(place)?,
        })
    }

    /// Adds `customer` as the next holder, grabbed at `grabbed_at`, and
    /// returns their coupon number (the new length); a customer who already
    /// holds one is left as they are.
    pub(crate) fn insert(
        &mut self,
        customer: &str,
        grabbed_at: DateTime<Utc>,
    ) -> Result<u32, AlreadyHeld> {
        // At most `CouponCount::MAX` holders, far below u32::MAX.
        let place = u32::try_from(self.arena.len()).unwrap_or(u32::MAX);
        self.index
            .insert(&self.arena, customer, place)
            .map_err(|held| AlreadyHeld { number: held + 1 })?;
        self.arena.push(customer, grabbed_at);
        Ok(place + 1)
    }

    /// The customer at `place` (from 0) in arrival order.
    pub(crate) fn customer(&self, place: u32) -> Option<&str> {
        self.arena.customer(place)
    }

    /// Every holder, in grab order (so by coupon number).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Holder<'_>> + '_ {
        self.arena
            .entries()
            .zip(1u32..)
            .map(|((customer, grabbed_at), number)| Holder {
                customer,
                number,
                grabbed_at,
            })
    }
}

/// Equal when the same customers hold the same numbers from the same times;
/// numbers follow from the order, so that is comparing in order.
impl PartialEq for HolderSet {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for HolderSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
