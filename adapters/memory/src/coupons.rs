//! [`CouponIndex`]: which events granted each customer's coupons. The
//! coupons themselves stay in the events, their one copy; `coupons_of` reads
//! them from there, so the projection is derived from the events and cannot
//! disagree with them.

use std::collections::HashMap;
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use seckill_domain::CustomerId;

/// Where an event is: its stream's index in the store and its place in the
/// stream, from 0. Eight bytes, against the 24 of a promotion id and a
/// sequence number, for every entry of the global log and of this index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventRef {
    pub(crate) stream: u32,
    pub(crate) at: u32,
}

/// The coupons one customer holds. Most hold one: inline, so a new holder
/// costs no allocation of its own.
#[derive(Debug)]
enum Held {
    One(EventRef),
    Many(Vec<EventRef>),
}

impl Held {
    fn push(&mut self, event: EventRef) {
        match self {
            Self::One(first) => *self = Self::Many(vec![*first, event]),
            Self::Many(events) => events.push(event),
        }
    }

    fn as_slice(&self) -> &[EventRef] {
        match self {
            Self::One(event) => std::slice::from_ref(event),
            Self::Many(events) => events,
        }
    }
}

/// Every customer's coupon events, in [`SHARDS`] maps chosen by the
/// customer's hash. One map of millions of holders rehashes all of them at
/// once when it fills, under the store's lock; a shard rehashes a 64th,
/// which keeps a hot sale's p99.9 down (`docs/benchmarks/hot-promotion.md`).
#[derive(Debug)]
pub(crate) struct CouponIndex {
    shards: Vec<HashMap<CustomerId, Held, RandomState>>,
    // Its own seed, apart from the maps': keys that share a shard must not
    // also share the bits the map places them by.
    shard_of: RandomState,
}

/// Maps the index is spread over.
const SHARDS: usize = 64;

impl Default for CouponIndex {
    fn default() -> Self {
        Self {
            // foldhash: fast on short ids, seeded per process against chosen
            // collisions.
            shards: (0..SHARDS).map(|_| HashMap::default()).collect(),
            shard_of: RandomState::default(),
        }
    }
}

impl CouponIndex {
    fn shard(&self, customer: &CustomerId) -> usize {
        (self.shard_of.hash_one(customer) % SHARDS as u64) as usize
    }

    /// The events that granted `customer`'s coupons, in grab order.
    pub(crate) fn of(&self, customer: &CustomerId) -> &[EventRef] {
        self.shards[self.shard(customer)]
            .get(customer)
            .map_or(&[], Held::as_slice)
    }

    /// Records that `event` granted `customer` a coupon.
    pub(crate) fn add(&mut self, customer: &CustomerId, event: EventRef) {
        use std::collections::hash_map::Entry;
        let shard = self.shard(customer);
        // One lookup; the id's clone is a reference count, paid for holders
        // already known too, who are few.
        match self.shards[shard].entry(customer.clone()) {
            Entry::Occupied(mut held) => held.get_mut().push(event),
            Entry::Vacant(vacant) => {
                vacant.insert(Held::One(event));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(id: &str) -> CustomerId {
        CustomerId::parse(id).expect("valid id")
    }

    #[test]
    fn a_customer_finds_every_event_in_grab_order() {
        let mut index = CouponIndex::default();
        let events: Vec<_> = (0..5).map(|at| EventRef { stream: at % 2, at }).collect();
        for &event in &events {
            index.add(&customer("ann"), event);
        }
        index.add(&customer("bob"), EventRef { stream: 7, at: 9 });
        assert_eq!(index.of(&customer("ann")), &events[..]);
        assert_eq!(index.of(&customer("bob")), &[EventRef { stream: 7, at: 9 }]);
        assert_eq!(index.of(&customer("cid")), &[]);
    }
}
