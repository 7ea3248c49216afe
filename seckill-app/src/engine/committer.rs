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

use crate::error::StoreError;
use crate::port::{Backend, Commit};

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
        if self.sender.send(Pending { commit, reply }).is_err() {
            return Err(StoreError::unavailable("the committer has stopped"));
        }
        outcome
            .await
            .unwrap_or_else(|_| Err(StoreError::unavailable("the committer stopped mid-append")))
    }
}

/// One worker: waits for a commit, takes whatever else is queued (up to
/// `max_group` commits or [`MAX_GROUP_EVENTS`] events), appends them as one
/// group, and answers each.
async fn work(
    backend: Arc<dyn Backend>,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>,
    max_group: usize,
    group_size: Histogram,
    groups: Arc<AtomicU64>,
) {
    loop {
        let mut group: Vec<Pending> = Vec::with_capacity(max_group);
        let mut events = 0;
        {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            let mut next = Some(first);
            while let Some(pending) = next {
                // A writer that gave up (its store timeout passed) has
                // answered its callers "outcome unknown"; not writing it
                // keeps that true and spares the store.
                if !pending.reply.is_closed() {
                    events += pending.commit.events.len();
                    group.push(pending);
                }
                // The limits are checked before taking another, so a group
                // passes them by at most one commit.
                next = if group.len() < max_group && events < MAX_GROUP_EVENTS {
                    receiver.try_recv().ok()
                } else {
                    None
                };
            }
        }
        if group.is_empty() {
            continue;
        }
        group_size.record(group.len() as f64);
        groups.fetch_add(1, Ordering::Relaxed);
        let outcomes = append_all(&*backend, &group).await;
        for (pending, outcome) in group.into_iter().zip(outcomes) {
            let Pending { commit, reply } = pending;
            // Dropped before the answer, so the writer owns the commit again
            // and can hand its events to the callers without a copy.
            drop(commit);
            let _ = reply.send(outcome);
        }
    }
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
