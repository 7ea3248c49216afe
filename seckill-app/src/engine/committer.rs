//! Group commit across promotions (ADR 0012): the committer every writer of
//! the process hands its decided batch to, so the batches of many promotions
//! reach the store in one [`append_group`](crate::EventStore::append_group)
//! (on PostgreSQL, one transaction) instead of one transaction each.
//!
//! A platform that runs a hundred sales at once has a hundred writers, each
//! with a small batch: alone, every one of them pays a round trip, a commit
//! (an fsync) and a turn at the lock that keeps positions in commit order
//! (ADR 0011). Together they pay once.
//!
//! Each commit still carries its own expected sequence, and the store answers
//! each commit on its own, so one promotion's conflict costs only that
//! promotion its batch. The committer retries nothing: every answer goes
//! back to its writer, whose retry policy is the engine's only one.
//!
//! A group holds at most one commit per promotion without a check here: a
//! writer has one commit in flight, and one whose store timeout passed has
//! dropped its reply, so its stale commit is skipped below.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use metrics::Histogram;
use tokio::sync::{mpsc, oneshot, Mutex};
use tracing::{Instrument, Span};

use crate::error::StoreError;
use crate::port::{Backend, Commit};
use crate::trace::{as_attribute, TARGET};

/// Where a writer sends a commit: straight to the store, or through the
/// shared committer.
pub(super) enum Committer {
    /// Each writer appends alone (`EngineConfig::max_commit_group` is 1, or
    /// the store writes a group no faster than one commit at a time).
    Direct(Arc<dyn Backend>),
    /// Writers queue their commits for the shared committer's workers.
    Grouped(Grouped),
}

/// The queue to the committer's workers.
pub(super) struct Grouped {
    sender: mpsc::UnboundedSender<Pending>,
    /// Groups appended so far, for `EngineStats::commit_groups`.
    groups: Arc<AtomicU64>,
}

/// A commit waiting for its group, and where its outcome goes.
struct Pending {
    commit: Arc<Commit>,
    reply: oneshot::Sender<Result<(), StoreError>>,
    /// The commit's span, when its batch is traced (else disabled).
    span: Span,
}

/// Workers, and so appends in flight at once: while one waits for the
/// store, the other gathers the next group, so the commits that queue meanwhile
/// are on their way when the first transaction ends. More would only queue at
/// the store's events lock (ADR 0011).
const WORKERS: usize = 2;

/// Events past which a group takes no more commits, so one statement stays
/// a few megabytes and well inside a store timeout.
const MAX_GROUP_EVENTS: usize = 16_384;

impl Committer {
    /// A committer for `backend` that puts up to `max_group` commits in one
    /// append (1, or a store that does not group commits: each writer
    /// appends alone). A grouping one starts its workers on the current
    /// Tokio runtime.
    pub(super) fn new(backend: Arc<dyn Backend>, max_group: usize, group_size: Histogram) -> Self {
        if max_group <= 1 || !backend.groups_commits() {
            return Self::Direct(backend);
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        let groups = Arc::<AtomicU64>::default();
        // tokio's Mutex: a worker holds it across the `.await` that waits
        // for commits, and the other worker waits its turn.
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..WORKERS {
            // Not in the engine's task tracker: a worker ends when the last
            // writer (and the engine) dropped its sender, which is after
            // every writer `shutdown` waits for.
            tokio::spawn(work(
                Arc::clone(&backend),
                Arc::clone(&receiver),
                max_group,
                group_size.clone(),
                Arc::clone(&groups),
            ));
        }
        Self::Grouped(Grouped { sender, groups })
    }

    /// Groups appended so far; 0 when each writer appends alone.
    pub(super) fn groups(&self) -> u64 {
        match self {
            Self::Direct(_) => 0,
            // Relaxed: a statistic, ordered with nothing else.
            Self::Grouped(grouped) => grouped.groups.load(Ordering::Relaxed),
        }
    }

    /// Appends `commit`, alone or in a group, and answers what the store
    /// answered for it.
    pub(super) async fn append(&self, commit: Arc<Commit>) -> Result<(), StoreError> {
        match self {
            Self::Direct(backend) => backend.append(&commit).await,
            Self::Grouped(grouped) => grouped.append(commit).await,
        }
    }
}

impl Grouped {
    async fn append(&self, commit: Arc<Commit>) -> Result<(), StoreError> {
        let (reply, outcome) = oneshot::channel();
        // Unbounded: every writer has at most one commit here (it waits for
        // the answer before deciding again), so the queue holds at most one
        // commit per live writer.
        let span = Span::current();
        if self
            .sender
            .send(Pending {
                commit,
                reply,
                span,
            })
            .is_err()
        {
            return Err(StoreError::unavailable("the committer has stopped"));
        }
        outcome
            .await
            .unwrap_or_else(|_| Err(StoreError::unavailable("the committer stopped mid-append")))
    }
}

/// One worker: gathers a group, appends it, and answers each commit.
async fn work(
    backend: Arc<dyn Backend>,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>,
    max_group: usize,
    group_size: Histogram,
    groups: Arc<AtomicU64>,
) {
    loop {
        let group = {
            let mut receiver = receiver.lock().await;
            match gather(&mut receiver, max_group, MAX_GROUP_EVENTS).await {
                Some(group) => group,
                None => return,
            }
        };
        if group.is_empty() {
            continue;
        }
        group_size.record(group.len() as f64);
        groups.fetch_add(1, Ordering::Relaxed);
        let outcomes = append_all(&*backend, &group)
            .instrument(group_span(&group))
            .await;
        for (pending, outcome) in group.into_iter().zip(outcomes) {
            let Pending { commit, reply, .. } = pending;
            // Dropped before the answer, so the writer owns the commit again
            // and can hand its events to the callers without a copy.
            drop(commit);
            let _ = reply.send(outcome);
        }
    }
}

/// The group's `append group` span, when any of its commits is traced: a
/// child of the first traced commit's span (so sampled with it), following
/// from the others'.
fn group_span(group: &[Pending]) -> Span {
    let mut traced = group.iter().filter(|pending| !pending.span.is_disabled());
    let Some(first) = traced.next() else {
        return Span::none();
    };
    let events: usize = group
        .iter()
        .map(|pending| pending.commit.events.len())
        .sum();
    let span = tracing::debug_span!(
        target: TARGET,
        parent: &first.span,
        "append group",
        promotions = as_attribute(group.len() as u64),
        events = as_attribute(events as u64),
    );
    for other in traced {
        span.follows_from(&other.span);
    }
    span
}

/// Waits for a commit and takes whatever else is queued, up to `max_group`
/// commits or `max_events` events (checked before taking another, so a
/// group passes them by at most one commit). `None` once every sender is
/// gone; an empty group when every commit taken was given up.
async fn gather(
    receiver: &mut mpsc::UnboundedReceiver<Pending>,
    max_group: usize,
    max_events: usize,
) -> Option<Vec<Pending>> {
    let mut next = Some(receiver.recv().await?);
    let mut group = Vec::new();
    let mut events = 0;
    while let Some(pending) = next {
        // A writer that gave up (its store timeout passed) has answered its
        // callers "outcome unknown"; not writing it keeps that true and
        // spares the store.
        if !pending.reply.is_closed() {
            events += pending.commit.events.len();
            group.push(pending);
        }
        next = if group.len() < max_group && events < max_events {
            receiver.try_recv().ok()
        } else {
            None
        };
    }
    Some(group)
}

/// The group's outcomes, one per commit. A store that answers with the wrong
/// number of outcomes breaks the port's contract; the commits it did not
/// answer get an error that says the outcome is unknown, never success.
async fn append_all(backend: &dyn Backend, group: &[Pending]) -> Vec<Result<(), StoreError>> {
    let commits: Vec<&Commit> = group.iter().map(|pending| &*pending.commit).collect();
    let mut outcomes = backend.append_group(&commits).await;
    outcomes.resize_with(group.len(), || {
        Err(StoreError::interrupted(
            "the store answered fewer commits than it was given",
        ))
    });
    outcomes
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use seckill_domain::testing::created;

    use super::*;
    use crate::projection::PromotionSummary;

    /// A queued commit of `events` events for a new promotion, and the
    /// receiver its writer waits on.
    fn pending(events: usize) -> (Pending, Outcome) {
        let promotion_id = seckill_domain::PromotionId::from_uuid(uuid::Uuid::new_v4());
        let now = Utc::now();
        let commit = Commit {
            promotion_id,
            expected_sequence: 0,
            events: (0..events).map(|_| created(promotion_id, 10)).collect(),
            summary: PromotionSummary {
                promotion_id,
                name: None,
                number_of_coupons: 10,
                remaining: 10,
                discount: 0.5,
                publish_time: now,
                finish_time: now,
                finish_reason: None,
                finished_at: None,
                last_sequence: events as u64,
                draw: None,
            },
            traceparents: Vec::new(),
        };
        let (reply, outcome) = oneshot::channel();
        let pending = Pending {
            commit: Arc::new(commit),
            reply,
            span: Span::none(),
        };
        (pending, outcome)
    }

    /// What a writer waits on for its commit's answer.
    type Outcome = oneshot::Receiver<Result<(), StoreError>>;

    /// A queue holding commits of these sizes; the writers' receivers too.
    fn queue(sizes: &[usize]) -> (mpsc::UnboundedSender<Pending>, Queue, Vec<Outcome>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut outcomes = Vec::new();
        for &size in sizes {
            let (pending, outcome) = pending(size);
            sender.send(pending).unwrap();
            outcomes.push(outcome);
        }
        (sender, receiver, outcomes)
    }

    type Queue = mpsc::UnboundedReceiver<Pending>;

    fn sizes(group: &[Pending]) -> Vec<usize> {
        group.iter().map(|p| p.commit.events.len()).collect()
    }

    #[tokio::test]
    async fn a_group_takes_every_commit_queued_up_to_max_group() {
        let (_sender, mut receiver, _outcomes) = queue(&[1, 2, 3, 4, 5]);
        let group = gather(&mut receiver, 3, 1_000).await.unwrap();
        assert_eq!(sizes(&group), [1, 2, 3]);
        let group = gather(&mut receiver, 3, 1_000).await.unwrap();
        assert_eq!(sizes(&group), [4, 5], "the rest, in order, in the next");
    }

    #[tokio::test]
    async fn a_group_stops_taking_once_past_its_events() {
        // 6 + 5 passes 10: the commit that passed goes, no more after it.
        let (_sender, mut receiver, _outcomes) = queue(&[6, 5, 1]);
        let group = gather(&mut receiver, 100, 10).await.unwrap();
        assert_eq!(sizes(&group), [6, 5]);
        // A commit bigger than the limit goes alone.
        let (_sender, mut receiver, _outcomes) = queue(&[50, 1]);
        let group = gather(&mut receiver, 100, 10).await.unwrap();
        assert_eq!(sizes(&group), [50]);
    }

    #[tokio::test]
    async fn a_commit_whose_writer_gave_up_is_not_written() {
        let (_sender, mut receiver, mut outcomes) = queue(&[1, 2, 3]);
        // The writer of the second commit dropped its receiver (its store
        // timeout passed).
        drop(outcomes.remove(1));
        let group = gather(&mut receiver, 100, 1_000).await.unwrap();
        assert_eq!(sizes(&group), [1, 3]);
    }

    #[tokio::test]
    async fn a_queue_of_given_up_commits_gathers_an_empty_group() {
        let (_sender, mut receiver, outcomes) = queue(&[1, 2]);
        drop(outcomes);
        let group = gather(&mut receiver, 100, 1_000).await.unwrap();
        assert!(group.is_empty());
    }

    #[tokio::test]
    async fn gathering_ends_once_every_writer_is_gone() {
        let (sender, mut receiver, _outcomes) = queue(&[1]);
        drop(sender);
        assert_eq!(
            sizes(&gather(&mut receiver, 100, 1_000).await.unwrap()),
            [1]
        );
        assert!(gather(&mut receiver, 100, 1_000).await.is_none());
    }
}
