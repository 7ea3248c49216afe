//! In-memory storage for SecKill: the embedded default backend.
//!
//! It keeps the same promises as the PostgreSQL adapter, minus durability
//! across restarts: an append whose expected sequence is stale fails with
//! [`StoreError::Conflict`] and writes nothing, and a commit's events and
//! summary land together or not at all. Unlike cqrs-es's `MemStore` it is
//! meant for real use: it is quiet, and safe to call from many tasks at once.
//!
//! Its projections are derived from the events: a customer's coupons are
//! read from the events that granted them, through an index of 8-byte
//! references, so each coupon is held once (in its event) and the query can
//! never disagree with the stream. There is nothing to rebuild or repair:
//! [`ProjectionStore::replace_projection`] changes nothing, as the port allows
//! a backend that derives its projections.
//!
//! It lives in one process, so it has no replicas: there is no `Ownership`
//! for it, and one `SecKill` per store is the way to use it (several on one
//! store stay correct, through the conflict check, but fight each other).
//!
//! # Layout
//! * `MemoryStore` – the event streams, snapshots and projections, behind one
//!   lock so each commit is atomic.
//! * `segments`   – `Segments`, the append-only storage
//!   of the streams and the global log: growing never copies them.
//! * `coupons`    – `CouponIndex`, which events
//!   granted each customer's coupons.
//! * `subscriptions` – the leases and checkpoints of durable subscriptions.

mod coupons;
mod segments;
mod subscriptions;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use foldhash::fast::RandomState;
use seckill_app::draw::DrawKey;
use seckill_app::{
    Commit, EventStore, PositionedEvent, ProjectionStore, PromotionSummary, Snapshot, StoreError,
};
use seckill_domain::{Coupon, CustomerId, PromotionEvent, PromotionId};

use coupons::{CouponIndex, EventRef};
use segments::Segments;

/// Event streams, snapshots and projections held in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    // std Mutex, not tokio's: every critical section is a few map operations
    // with no `.await` inside, and one lock makes each commit atomic.
    inner: Mutex<Inner>,
    subscriptions: subscriptions::Subscriptions,
}

#[derive(Debug, Default)]
struct Inner {
    /// Every stream, at the index [`Inner::ids`] gives its promotion: the
    /// log and the coupon index name an event by that index and its place.
    streams: Vec<Stream>,
    ids: HashMap<PromotionId, u32, RandomState>,
    /// The global order: where every event is, appended under the same lock
    /// as the streams, so position order is commit order and a reader can
    /// never find a hole behind it.
    log: Segments<EventRef>,
    // Arc: a snapshot of a big promotion is a big copy; it is made and freed
    // outside the lock, which then only moves a pointer.
    snapshots: HashMap<PromotionId, Arc<Snapshot>>,
    /// The summary each promotion's last commit carried.
    summaries: BTreeMap<PromotionId, PromotionSummary>,
    coupons: CouponIndex,
    /// Made at the first ask and kept as long as the events are.
    draw_key: Option<DrawKey>,
    /// The traced events' `traceparent`s, by their index in `log`: few
    /// events have one, so a map beside the log, not a field of each.
    traceparents: HashMap<usize, Box<str>, RandomState>,
}

/// One promotion's events, in order.
#[derive(Debug)]
struct Stream {
    promotion_id: PromotionId,
    events: Segments<PromotionEvent>,
}

impl Inner {
    fn stream(&self, promotion_id: PromotionId) -> Option<&Stream> {
        let index = *self.ids.get(&promotion_id)?;
        self.streams.get(index as usize)
    }

    fn head(&self, promotion_id: PromotionId) -> u64 {
        self.stream(promotion_id)
            .map_or(0, |stream| stream.events.len() as u64)
    }

    fn event(&self, at: EventRef) -> Option<(&Stream, &PromotionEvent)> {
        let stream = self.streams.get(at.stream as usize)?;
        Some((stream, stream.events.get(at.at as usize)?))
    }

    /// The index of `promotion_id`'s stream, made empty if it has none.
    fn stream_index(&mut self, promotion_id: PromotionId) -> Result<u32, StoreError> {
        if let Some(&index) = self.ids.get(&promotion_id) {
            return Ok(index);
        }
        let index = u32::try_from(self.streams.len())
            .map_err(|_| StoreError::backend("the memory store holds 2^32 promotions already"))?;
        self.streams.push(Stream {
            promotion_id,
            events: Segments::default(),
        });
        self.ids.insert(promotion_id, index);
        Ok(index)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave `Inner` half-updated: every mutation
        // below checks first and then only pushes and inserts.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many events the store holds for one promotion.
    pub fn stream_len(&self, promotion_id: PromotionId) -> usize {
        self.lock().head(promotion_id) as usize
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn load_events(
        &self,
        promotion_id: PromotionId,
        after: u64,
    ) -> Result<Vec<PromotionEvent>, StoreError> {
        let inner = self.lock();
        let Some(stream) = inner.stream(promotion_id) else {
            return Ok(Vec::new());
        };
        let skip = usize::try_from(after).unwrap_or(usize::MAX);
        Ok(stream.events.iter_from(skip).cloned().collect())
    }

    async fn append(&self, commit: &Commit) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if inner.head(commit.promotion_id) != commit.expected_sequence {
            return Err(StoreError::Conflict {
                promotion_id: commit.promotion_id,
                expected: commit.expected_sequence,
            });
        }
        // Every event's place must fit the 32 bits the log names it by.
        let first = u32::try_from(commit.expected_sequence)
            .ok()
            .filter(|&first| {
                u32::try_from(commit.events.len())
                    .is_ok_and(|count| first.checked_add(count).is_some())
            })
            .ok_or_else(|| {
                StoreError::backend("a stream of the memory store holds at most 2^32 events")
            })?;
        let index = inner.stream_index(commit.promotion_id)?;
        let stream = &mut inner.streams[index as usize].events;
        for ((at, event), traced) in (first..).zip(&commit.events).zip(0..) {
            let at = EventRef { stream: index, at };
            if let Some(traceparent) = commit.traceparent(traced) {
                inner
                    .traceparents
                    .insert(inner.log.len(), traceparent.into());
            }
            if let PromotionEvent::CouponGrabbed { coupon, .. } = event {
                inner.coupons.add(&coupon.customer_id, at);
            }
            stream.push(event.clone());
            inner.log.push(at);
        }
        inner
            .summaries
            .insert(commit.promotion_id, commit.summary.clone());
        Ok(())
    }

    async fn draw_key(&self) -> Result<DrawKey, StoreError> {
        let mut inner = self.lock();
        if let Some(key) = inner.draw_key {
            return Ok(key);
        }
        let key = DrawKey::random().map_err(StoreError::backend)?;
        inner.draw_key = Some(key);
        Ok(key)
    }

    async fn load_snapshot(
        &self,
        promotion_id: PromotionId,
    ) -> Result<Option<Snapshot>, StoreError> {
        let snapshot = self.lock().snapshots.get(&promotion_id).cloned();
        Ok(snapshot.map(Arc::unwrap_or_clone))
    }

    async fn save_snapshot(
        &self,
        promotion_id: PromotionId,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let copy = Arc::new(snapshot.clone());
        let replaced = {
            let mut inner = self.lock();
            let newer = inner
                .snapshots
                .get(&promotion_id)
                .is_none_or(|old| old.sequence < snapshot.sequence);
            if newer {
                inner.snapshots.insert(promotion_id, copy)
            } else {
                Some(copy)
            }
        };
        // Whichever copy lost is dropped here, after the lock is released.
        drop(replaced);
        Ok(())
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<PositionedEvent>, StoreError> {
        let inner = self.lock();
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        let entries = (start..).zip(inner.log.iter_from(start)).take(limit);
        entries
            .map(|(index, &at)| {
                // Every log entry was pushed with its stream's event.
                let (stream, event) = inner
                    .event(at)
                    .ok_or_else(|| StoreError::backend("the global log names a missing event"))?;
                Ok(PositionedEvent {
                    position: index as u64 + 1,
                    promotion_id: stream.promotion_id,
                    sequence: u64::from(at.at) + 1,
                    event: event.clone(),
                    traceparent: inner.traceparents.get(&index).map(|tp| tp.to_string()),
                })
            })
            .collect()
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        Ok(self.lock().log.len() as u64)
    }

    async fn promotion_ids(&self) -> Result<Vec<PromotionId>, StoreError> {
        let mut ids: Vec<_> = self.lock().ids.keys().copied().collect();
        ids.sort_unstable();
        Ok(ids)
    }
}

#[async_trait]
impl ProjectionStore for MemoryStore {
    async fn coupons_of(&self, customer: &CustomerId) -> Result<Vec<Coupon>, StoreError> {
        let inner = self.lock();
        inner
            .coupons
            .of(customer)
            .iter()
            .map(|&at| match inner.event(at) {
                Some((_, PromotionEvent::CouponGrabbed { coupon, .. })) => Ok(coupon.clone()),
                // The index is written with the events it names, under one lock.
                _ => Err(StoreError::backend(
                    "the coupon index names an event that grants no coupon",
                )),
            })
            .collect()
    }

    async fn promotion(
        &self,
        promotion_id: PromotionId,
    ) -> Result<Option<PromotionSummary>, StoreError> {
        Ok(self.lock().summaries.get(&promotion_id).cloned())
    }

    async fn unfinished_promotions(&self) -> Result<Vec<PromotionSummary>, StoreError> {
        Ok(self
            .lock()
            .summaries
            .values()
            .filter(|s| s.finish_reason.is_none())
            .cloned()
            .collect())
    }

    /// Changes nothing: the coupons are read from the events, and the
    /// summary is the one the last commit carried, so there is nothing
    /// written apart from the events to roll back or repair.
    async fn replace_projection(
        &self,
        _summary: &PromotionSummary,
        _coupons: &[Coupon],
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// Replaces nothing (the projections are the events'); answers whether
    /// the stream is still where `summary` was read.
    async fn replace_projection_if_current(
        &self,
        summary: &PromotionSummary,
        _coupons: &[Coupon],
    ) -> Result<bool, StoreError> {
        Ok(self.lock().head(summary.promotion_id) <= summary.last_sequence)
    }
}
