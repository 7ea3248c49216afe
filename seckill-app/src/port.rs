//! The ports: what the application needs from storage, written as traits that
//! adapters implement (`seckill-memory`, `seckill-postgres`, or your own).
//!
//! Writes go through [`EventStore::append`], which stores a batch of events
//! *and* the projection changes they imply in one atomic step. That is why a
//! crash can never leave the coupon lists behind the event stream.

use std::collections::HashSet;

use async_trait::async_trait;
use seckill_domain::{Coupon, CustomerId, Promotion, PromotionEvent, PromotionId};

use crate::draw::DrawKey;
use crate::error::StoreError;
use crate::projection::PromotionSummary;
use crate::subscription::SubscriptionStore;

/// Events per page of the default [`EventStore::promotion_ids`].
const PROMOTION_IDS_PAGE: usize = 1_024;

/// A batch of events for one promotion, appended in one atomic step.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The promotion's stream.
    pub promotion_id: PromotionId,
    /// The sequence number of the last event the writer saw; the events get
    /// `expected_sequence + 1 ..`. If the stream has moved on, the append must
    /// fail with [`StoreError::Conflict`] and write nothing.
    pub expected_sequence: u64,
    /// The events, in order.
    pub events: Vec<PromotionEvent>,
    /// The promotion's summary after these events, for the promotion
    /// projection. Its `last_sequence` is the last new event's sequence.
    pub summary: PromotionSummary,
    /// Per event, the W3C `traceparent` of the sampled command that caused
    /// it, for the store to keep beside it (the event's metadata) and hand
    /// back in [`PositionedEvent::traceparent`]. Empty when no command of
    /// the commit was traced (then no event has one); read it with
    /// [`Commit::traceparent`].
    pub traceparents: Vec<Option<String>>,
}

impl Commit {
    /// The coupons these events grant, for the coupons-by-customer projection.
    pub fn coupons(&self) -> impl Iterator<Item = &Coupon> + '_ {
        crate::projection::coupons_in(&self.events)
    }

    /// The `traceparent` of event `index` of this commit, if its command
    /// was traced. A store that keeps none loses only the link from its
    /// feed's readers to the grab's trace.
    pub fn traceparent(&self, index: usize) -> Option<&str> {
        self.traceparents.get(index).and_then(Option::as_deref)
    }

    /// The sequence number of the last event in this commit.
    pub fn last_sequence(&self) -> u64 {
        self.expected_sequence + self.events.len() as u64
    }
}

/// A promotion's state saved at a sequence number, so loading need not replay
/// the whole stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The state after applying events `1..=sequence`.
    pub promotion: Promotion,
    /// The last event the state includes.
    pub sequence: u64,
}

/// One stored event in the store's global order, across every promotion.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionedEvent {
    /// Its place in the global order, from 1. Readers resume after the last
    /// position they handled.
    pub position: u64,
    /// The promotion whose stream holds it.
    pub promotion_id: PromotionId,
    /// Its number in that stream.
    pub sequence: u64,
    /// The event.
    pub event: PromotionEvent,
    /// The W3C `traceparent` of the sampled command that caused it, if the
    /// store keeps one ([`Commit::traceparent`]): a reader continues that
    /// trace (the JetStream publisher puts it in the message's headers).
    pub traceparent: Option<String>,
}

/// The write side: promotion event streams.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// The events of one promotion with a sequence number above `after`, in
    /// order. An unknown promotion has none.
    async fn load_events(
        &self,
        promotion_id: PromotionId,
        after: u64,
    ) -> Result<Vec<PromotionEvent>, StoreError>;

    /// Appends `commit.events` and applies `commit`'s projection changes, all or
    /// nothing. Fails with [`StoreError::Conflict`] if the stream's last
    /// sequence is not `commit.expected_sequence`.
    async fn append(&self, commit: &Commit) -> Result<(), StoreError>;

    /// Whether [`append_group`](Self::append_group) writes a group faster
    /// than one commit after another (it does on PostgreSQL: one
    /// transaction). The engine hands commits to its shared committer only
    /// for such a store; otherwise every writer appends on its own, because
    /// the committer's hop would only add a queue. Default `false`.
    fn groups_commits(&self) -> bool {
        false
    }

    /// Appends the commits of several promotions together (group commit
    /// across promotions, ADR 0012), answering each on its own, in order:
    /// `outcomes[i]` is what [`append`](Self::append) would have answered
    /// for `commits[i]`.
    ///
    /// The contract:
    /// - each commit is all or nothing, exactly as in `append`;
    /// - **one commit's conflict never fails another's**: a stream that moved
    ///   on gets [`StoreError::Conflict`] and nothing of it is written, while
    ///   the others are written;
    /// - an error that is not about one stream (the connection broke, the
    ///   store timed out) may be every commit's answer; when the store cannot
    ///   tell whether the group landed it says so
    ///   ([`StoreError::outcome_unknown`]), and the caller reads back;
    /// - the engine passes at most one commit per promotion;
    /// - the store resends nothing on its own: the engine's writer owns the
    ///   retry policy (it decides again on a conflict and reads back after
    ///   an unknown outcome), so a retry below it would only repeat one.
    ///
    /// The default appends one commit after another. A store that can write
    /// many streams in one transaction (PostgreSQL: one function call)
    /// overrides it, and answers `true` from
    /// [`groups_commits`](Self::groups_commits) so the engine sends it
    /// groups: that is where a platform with many sales at once gets its
    /// throughput back.
    async fn append_group(&self, commits: &[&Commit]) -> Vec<Result<(), StoreError>> {
        let mut outcomes = Vec::with_capacity(commits.len());
        for &commit in commits {
            outcomes.push(self.append(commit).await);
        }
        outcomes
    }

    /// The latest snapshot of a promotion, if the store keeps them.
    async fn load_snapshot(
        &self,
        promotion_id: PromotionId,
    ) -> Result<Option<Snapshot>, StoreError> {
        let _ = promotion_id;
        Ok(None)
    }

    /// Saves a snapshot. Stores that do not keep snapshots ignore it.
    async fn save_snapshot(
        &self,
        promotion_id: PromotionId,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let _ = (promotion_id, snapshot);
        Ok(())
    }

    /// Every promotion's events after global position `after`, in position
    /// order, at most `limit` of them.
    ///
    /// The contract a follower relies on: **no event is ever skipped.** An
    /// event at a position the feed has passed can never appear later, even
    /// when appends run concurrently: a backend hands out positions in commit
    /// order (PostgreSQL: one inserter at a time, ADR 0011). Within one
    /// promotion, positions follow sequences.
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<PositionedEvent>, StoreError>;

    /// The newest position [`read_all`](Self::read_all) can reach now (0 for
    /// an empty store): the head a follower's lag is measured against, and
    /// where a subscription that starts "now" begins.
    ///
    /// The default finds it with `read_all` alone, in about 2·log2(head)
    /// reads of one event each. A store that can read its newest position
    /// in one query (an index's maximum) overrides it: a running
    /// subscription asks once a second.
    async fn head_position(&self) -> Result<u64, StoreError> {
        // `read_all(after, 1)` is empty exactly when the head is at most
        // `after`. Gallop up to a bound with nothing after it, then halve
        // the gap; `low` is always 0 or a position that exists, so the
        // search ends on the head. Positions need not be dense.
        let mut low = 0u64;
        let mut step = 1u64;
        let mut high = loop {
            let probe = low.saturating_add(step);
            match self.read_all(probe, 1).await?.first() {
                Some(event) => {
                    low = event.position;
                    step = step.saturating_mul(2);
                }
                None => break probe,
            }
        };
        while low < high {
            let middle = low + (high - low) / 2;
            match self.read_all(middle, 1).await?.first() {
                Some(event) => low = event.position,
                None => high = middle,
            }
        }
        Ok(low)
    }

    /// Every promotion that has events, for rebuilding projections.
    ///
    /// The default reads the whole global feed through
    /// [`read_all`](Self::read_all), a page at a time, and lists each
    /// promotion once, in the order of its first event. Its callers, the
    /// rebuild and the start-up catch-up, read every promotion anyway; a
    /// store that keeps a list of its streams overrides it.
    async fn promotion_ids(&self) -> Result<Vec<PromotionId>, StoreError> {
        let mut seen = HashSet::new();
        let mut ids = Vec::new();
        let mut after = 0;
        loop {
            let page = self.read_all(after, PROMOTION_IDS_PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(ids);
            };
            after = last.position;
            for event in &page {
                if seen.insert(event.promotion_id) {
                    ids.push(event.promotion_id);
                }
            }
        }
    }

    /// Whether the store answers at all, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The key draws' secrets are sealed with ([`crate::draw`]): made at
    /// the first call (say with [`DrawKey::random`]) and the same at every
    /// call after, from every process on the store, so whichever replica
    /// owns a draw at its close, after any restart, opens its secret. A
    /// store that forgets its events may forget it with them. No default:
    /// a key that did not outlive the process would strand every pending
    /// draw.
    async fn draw_key(&self) -> Result<DrawKey, StoreError>;
}

/// The read side: the projections that answer queries.
#[async_trait]
pub trait ProjectionStore: Send + Sync + 'static {
    /// Every coupon `customer` holds, oldest first. `[]` for a stranger.
    async fn coupons_of(&self, customer: &CustomerId) -> Result<Vec<Coupon>, StoreError>;

    /// One promotion's summary.
    async fn promotion(
        &self,
        promotion_id: PromotionId,
    ) -> Result<Option<PromotionSummary>, StoreError>;

    /// The summaries of every promotion not recorded as finished.
    async fn unfinished_promotions(&self) -> Result<Vec<PromotionSummary>, StoreError>;

    /// Replaces everything projected for one promotion, whatever the stream
    /// holds: for repair tools that run while nothing writes.
    /// `summary.last_sequence` is the number of the stream's events the rows
    /// were built from: a store may refuse a summary ahead of its stream with
    /// an error, since it may rely on a summary never being ahead
    /// (PostgreSQL's group append reads heads from it, ADR 0012).
    async fn replace_projection(
        &self,
        summary: &PromotionSummary,
        coupons: &[Coupon],
    ) -> Result<(), StoreError>;

    /// Replaces everything projected for one promotion with what a rebuild
    /// read, unless the stream has moved past `summary.last_sequence` (a
    /// writer appended meanwhile, perhaps in another process): the rebuilt
    /// rows would erase that append's coupons, so nothing is replaced and the
    /// answer is `false`. The check and the write are atomic against
    /// concurrent appends. Rebuilds and start-up catch-up use this, so a
    /// replica starting beside one that sells never erases a fresh coupon.
    async fn replace_projection_if_current(
        &self,
        summary: &PromotionSummary,
        coupons: &[Coupon],
    ) -> Result<bool, StoreError>;
}

/// A complete storage backend: both sides, over one store, so a commit can
/// update events and projections atomically; and the checkpoints of the
/// subscriptions that follow it.
///
/// # The contract
/// What the engine relies on, beyond each method's own promise. The
/// conformance suite, `seckill-testkit`, checks every point; docs/backends.md
/// walks through writing a backend that keeps them.
///
/// - **Shared state.** Every handle opened on the same data (another pool,
///   another process, another replica) sees the same streams, projections
///   and checkpoints. Two engines on one store sell one promotion without
///   overselling only because the store tells the second its stream moved.
/// - **Conflicts.** [`EventStore::append`] writes only if the stream's last
///   sequence is the commit's `expected_sequence`; of two appends expecting
///   the same sequence, exactly one lands and the other gets
///   [`StoreError::Conflict`] with nothing written. A conflict is only ever
///   about that one stream: it never fails another promotion's commit.
/// - **Atomic projections.** A commit's events, its summary and its coupons
///   become visible together or not at all: no reader, in this process or
///   another, ever sees a coupon in [`ProjectionStore::coupons_of`] whose
///   event is not stored, nor a stored grab without its coupon. A backend
///   may write the projections in the events' transaction, or derive them
///   from the events when read (atomic by construction).
/// - **Honest outcomes.** An error after which the write may have happened
///   is [`StoreError::Timeout`] or [`StoreError::Interrupted`]
///   ([`StoreError::outcome_unknown`]); the engine then reads the stream
///   back instead of telling the customer "failed". [`StoreError::Unavailable`]
///   means nothing was written.
/// - **A gap-free global order** for [`EventStore::read_all`]: positions in
///   commit order, never an event behind one already read.
/// - **Optional:** snapshots ([`EventStore::save_snapshot`] may ignore them,
///   [`EventStore::load_snapshot`] then answers `None`), group commit
///   ([`EventStore::append_group`] defaults to one commit after another),
///   and stored projections: a backend that derives them from the events
///   has nothing for [`ProjectionStore::replace_projection`] to replace, and
///   [`ProjectionStore::replace_projection_if_current`] then only answers
///   whether the summary is still current.
pub trait Backend: EventStore + ProjectionStore + SubscriptionStore {}

impl<T: EventStore + ProjectionStore + SubscriptionStore> Backend for T {}

#[cfg(test)]
mod tests {
    use seckill_domain::testing::created;

    use super::*;

    /// A global feed and nothing else: all the defaults are built on.
    struct Feed(Vec<PositionedEvent>);

    impl Feed {
        /// Events at `positions`, of the promotion numbered
        /// `promotion_of(position)`.
        fn at(positions: &[u64], promotion_of: impl Fn(u64) -> u128) -> Self {
            let events = positions
                .iter()
                .map(|&position| {
                    let promotion_id =
                        PromotionId::from_uuid(uuid::Uuid::from_u128(promotion_of(position)));
                    PositionedEvent {
                        position,
                        promotion_id,
                        sequence: 1,
                        event: created(promotion_id, 1),
                        traceparent: None,
                    }
                })
                .collect();
            Self(events)
        }
    }

    #[async_trait]
    impl EventStore for Feed {
        async fn load_events(
            &self,
            _: PromotionId,
            _: u64,
        ) -> Result<Vec<PromotionEvent>, StoreError> {
            Ok(Vec::new())
        }

        async fn append(&self, _: &Commit) -> Result<(), StoreError> {
            Err(StoreError::backend("a feed takes no appends"))
        }

        async fn draw_key(&self) -> Result<DrawKey, StoreError> {
            Err(StoreError::backend("a feed keeps no key"))
        }

        async fn read_all(
            &self,
            after: u64,
            limit: usize,
        ) -> Result<Vec<PositionedEvent>, StoreError> {
            let page = self.0.iter().filter(|event| event.position > after);
            Ok(page.take(limit).cloned().collect())
        }
    }

    #[tokio::test]
    async fn the_default_head_is_the_newest_position_dense_or_not() {
        let dense: Vec<u64> = (1..=1_000).collect();
        let feeds: [&[u64]; 7] = [
            &[],
            &[1],
            &[1, 2],
            &dense,
            &[3, 7, 100, 1_000_000],
            &[5],
            &[1 << 40, (1 << 40) + 1],
        ];
        for positions in feeds {
            let feed = Feed::at(positions, |_| 1);
            let newest = positions.last().copied().unwrap_or(0);
            assert_eq!(feed.head_position().await.unwrap(), newest, "{positions:?}");
        }
    }

    #[tokio::test]
    async fn the_default_promotion_ids_name_each_once_in_order_of_first_event() {
        // More events than one page holds, seven promotions in turn.
        let positions: Vec<u64> = (1..=3_000).map(|n| n * 2).collect();
        let feed = Feed::at(&positions, |position| u128::from(7 - position / 2 % 7));
        let expected: Vec<PromotionId> = [6, 5, 4, 3, 2, 1, 7]
            .into_iter()
            .map(|n| PromotionId::from_uuid(uuid::Uuid::from_u128(n)))
            .collect();
        assert_eq!(feed.promotion_ids().await.unwrap(), expected);
        assert_eq!(Feed(Vec::new()).promotion_ids().await.unwrap(), []);
    }
}
