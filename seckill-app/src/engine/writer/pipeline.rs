//! The writer's commit pipeline: it decides a batch, sends its commit, and
//! while that commit is in flight decides what queues meanwhile, on the state
//! that includes the commit's events (`EngineConfig::decide_ahead`). The
//! next commit then leaves the moment the last one lands, instead of after
//! the writer has woken up and decided it.
//!
//! Nothing decided ahead is answered, or sent, before the commit it stands on
//! has landed: the next commit's expected sequence is only right if this one
//! is in the store, and a refusal ("sold out", "already grabbed") may rest on
//! this commit's grabs. If the commit fails, what was decided on top of it is
//! dropped and decided again on what the store holds.
//!
//! Only one commit of a promotion is in flight at a time. Sending the next
//! one before the first lands would overlap two appends, but a store checks
//! only the expected sequence: had another writer's events filled exactly
//! that gap, the second commit would land on a state it was not decided on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use seckill_domain::{Promotion, PromotionCommand, PromotionEvent};
use tracing::{Instrument, Span};

use super::{fail_all, is_grab, redirect_all, Writer};
use crate::engine::{Done, Request, Shared};
use crate::error::{SecKillError, StoreError};
use crate::port::Commit;
use crate::projection::PromotionSummary;
use crate::throttle::FAILURES;
use crate::trace::{as_attribute, TARGET};

/// How often, at most, a writer takes what queued while its commit is in
/// flight. A hot promotion's callers arrive one by one: waking for each
/// would wake the writer hundreds of times per commit to decide one grab
/// each, on cores the store needs too. Taking what a millisecond gathered
/// wakes it a few times per commit (`docs/benchmarks/hot-promotion.md`).
const INTAKE_EVERY: Duration = Duration::from_millis(1);

/// Requests decided on the writer's state, not yet sent.
#[derive(Default)]
struct Batch {
    requests: Vec<Request>,
    /// Per request: how many of `events` are its, or why it was refused.
    outcomes: Vec<Result<usize, SecKillError>>,
    events: Vec<PromotionEvent>,
}

/// The store's answer to a commit, as a future the writer polls while it
/// decides what arrives meanwhile.
type Answer = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// A commit on its way to the store, and the requests it answers.
struct Flight {
    requests: Vec<Request>,
    outcomes: Vec<Result<usize, SecKillError>>,
    commit: Arc<Commit>,
    answer: Answer,
    started: Instant,
    /// The state once this commit lands, copied when a snapshot falls due
    /// then and the writer has decided past it meanwhile (a snapshot must
    /// hold committed events only). The copy is cheap: ADR 0013.
    snapshot: Option<Promotion>,
}

/// What ended a wait for the store's answer.
enum Woken {
    Answered(Result<(), StoreError>),
    Arrived(Vec<Request>),
    Closed,
}

impl Writer {
    /// Decides and commits `requests`, and (with `decide_ahead`) whatever
    /// queues while a commit is in flight, until nothing is in flight and
    /// nothing decided waits; every request it took is answered. Fails only
    /// when the writer must stop (the state could not be reloaded after a
    /// failed commit, or the lease lapsed).
    pub(super) async fn process(&mut self, requests: Vec<Request>) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        self.decide(&mut batch, requests).await;
        let mut conflicts = 0;
        // Whether the queue may deliver more; once closed it stays closed.
        let mut open = true;
        loop {
            let Some(mut flight) = self.send(std::mem::take(&mut batch)).await? else {
                return Ok(());
            };
            let answer = self
                .wait_deciding_ahead(&mut flight, &mut batch, &mut open)
                .await;
            let metrics = &self.shared.metrics;
            metrics
                .commit_duration
                .record(flight.started.elapsed().as_secs_f64());
            match answer {
                Ok(()) => {
                    conflicts = 0;
                    let decided_past = !batch.requests.is_empty();
                    self.landed(flight, decided_past);
                }
                Err(error)
                    if error.is_conflict()
                        && conflicts < self.shared.config.max_conflict_retries =>
                {
                    // Another process wrote this promotion: catch up with it
                    // and decide the same requests again, in the same order,
                    // those decided ahead after the ones in flight.
                    conflicts += 1;
                    metrics.conflicts.add(1);
                    let mut requests = flight.requests;
                    requests.append(&mut batch.requests);
                    if self.shared.cluster.is_some() {
                        // Among replicas a conflict means another owner
                        // wrote: ask who owns the promotion before deciding
                        // again.
                        if let Err(error) = self.claim().await {
                            fail_all(requests, &error);
                            return Err(error);
                        }
                        if let Some(owner) = &self.lost_to {
                            redirect_all(requests, self.promotion_id, owner);
                            return Ok(());
                        }
                    }
                    // Random, growing backoff: two writers that keep colliding
                    // would otherwise reload and collide again in lockstep.
                    let ceiling_ms = 1u64 << conflicts.min(6);
                    tokio::time::sleep(Duration::from_micros(fastrand::u64(
                        0..=ceiling_ms * 1_000,
                    )))
                    .await;
                    if let Err(reload) = self.reload().await {
                        fail_all(requests, &reload);
                        return Err(reload);
                    }
                    batch = Batch::default();
                    self.decide(&mut batch, requests).await;
                }
                Err(error) => {
                    // Not acknowledged, so nothing in it is promised. Every
                    // answer in it was decided on state that includes the
                    // failed events, so every request gets the error, not
                    // just grabs.
                    metrics.failed_commits.add(1);
                    if let Some(left_out) = FAILURES.admit("commit failed") {
                        tracing::warn!(promotion = %self.promotion_id, %error, requests = flight.requests.len(), left_out, "commit failed");
                    }
                    if error.outcome_unknown() {
                        // Not in the store yet, but it may still land: only
                        // "unknown" is true, and a retry finds out.
                        for request in flight.requests {
                            let _ = request.reply.send(Err(SecKillError::OutcomeUnknown {
                                promotion_id: self.promotion_id,
                                source: error.clone(),
                            }));
                        }
                    } else {
                        fail_all(flight.requests, &error);
                    }
                    // Memory holds the failed events; the store is the truth.
                    // What was decided on top of them was never sent: it is
                    // decided again on what the store holds.
                    let requests = std::mem::take(&mut batch).requests;
                    if let Err(reload) = self.reload().await {
                        fail_all(requests, &reload);
                        return Err(reload);
                    }
                    conflicts = 0;
                    self.decide(&mut batch, requests).await;
                }
            }
        }
    }

    /// Waits for `flight`'s answer; meanwhile (with `decide_ahead`) takes
    /// what queues, at most once every [`INTAKE_EVERY`] and up to
    /// `max_batch` in all, and decides it into `batch` on the state that
    /// includes the flight. `open` turns false once the queue is closed.
    async fn wait_deciding_ahead(
        &mut self,
        flight: &mut Flight,
        batch: &mut Batch,
        open: &mut bool,
    ) -> Result<(), StoreError> {
        let mut intake = tokio::time::Instant::from_std(flight.started) + INTAKE_EVERY;
        loop {
            let room = self
                .shared
                .config
                .max_batch
                .saturating_sub(batch.requests.len());
            let woken = if self.shared.config.decide_ahead && *open && room > 0 {
                let mut arrived = Vec::new();
                let requests = &mut self.requests;
                tokio::select! {
                    // Biased: the answer ends the wait at once, exactly as
                    // if nothing were decided ahead.
                    biased;
                    answer = &mut flight.answer => Woken::Answered(answer),
                    // Both cancel-safe: a request is either in `arrived` or
                    // still queued.
                    n = async {
                        tokio::time::sleep_until(intake).await;
                        requests.recv_many(&mut arrived, room).await
                    } => match n {
                        0 => Woken::Closed,
                        _ => Woken::Arrived(arrived),
                    },
                }
            } else {
                Woken::Answered((&mut flight.answer).await)
            };
            match woken {
                Woken::Answered(answer) => return answer,
                Woken::Closed => *open = false,
                Woken::Arrived(arrived) => {
                    intake = tokio::time::Instant::now() + INTAKE_EVERY;
                    if batch.requests.is_empty() && self.snapshot_due(&flight.commit) {
                        flight.snapshot = Some(self.state.clone());
                    }
                    self.decide(batch, arrived).await;
                }
            }
        }
    }

    /// Decides `requests` on the writer's state, in order, adding to `batch`:
    /// each granted grab's events are applied at once, so the next request
    /// is decided on a state that includes them.
    async fn decide(&mut self, batch: &mut Batch, mut requests: Vec<Request>) {
        for request in &mut requests {
            // A traced command's wait in the queue ends here, and its
            // decision is a span of its own. (Decided again after a conflict
            // or a failed commit: then each round is a `decide` span.)
            let _decide = request.trace.as_deref_mut().map(|trace| {
                trace.queue = None;
                tracing::debug_span!(target: TARGET, parent: &trace.caller, "decide")
            });
            let events = &mut batch.events;
            let outcome = match &request.command {
                // The hot path: the same decision `handle` makes, without
                // its `EventSink` or a clone of the command.
                PromotionCommand::GrabCoupon { customer_id, at } => {
                    self.state.grab_events(customer_id, *at).map(|grab| {
                        let before = events.len();
                        for event in grab {
                            self.state.apply(event.clone());
                            events.push(event);
                        }
                        events.len() - before
                    })
                }
                // Entries are as hot as grabs in a draw: the same shortcut.
                PromotionCommand::EnterDraw { customer_id, at } => {
                    self.state.decide_entry(customer_id, *at).map(|entry| {
                        let event = PromotionEvent::DrawEntered { entry };
                        self.state.apply(event.clone());
                        events.push(event);
                        1
                    })
                }
                other => {
                    let sink = EventSink::default();
                    match self.state.handle(other.clone(), &(), &sink).await {
                        Ok(()) => {
                            let recorded = sink.collect().await;
                            let count = recorded.len();
                            events.extend(recorded);
                            Ok(count)
                        }
                        Err(error) => Err(error),
                    }
                }
            };
            batch
                .outcomes
                .push(outcome.map_err(|error| SecKillError::rejected(self.promotion_id, error)));
        }
        batch.requests.extend(requests);
    }

    /// Sends `batch`'s commit on its way, or, when it recorded nothing,
    /// answers it at once (nothing is in flight, so its answers are true).
    async fn send(&mut self, batch: Batch) -> Result<Option<Flight>, StoreError> {
        let Batch {
            requests,
            outcomes,
            events,
        } = batch;
        if requests.is_empty() {
            return Ok(None);
        }
        self.shared.metrics.batch_size.record(requests.len() as f64);
        self.report_queue_depth();
        if events.is_empty() {
            for (request, outcome) in requests.into_iter().zip(outcomes) {
                let answer = outcome.map(|_| {
                    let summary = (!is_grab(&request.command))
                        .then(|| PromotionSummary::of(&self.state, self.sequence))
                        .flatten();
                    Done::nothing(summary)
                });
                let _ = request.reply.send(answer);
            }
            return Ok(None);
        }
        let count = events.len() as u64;
        let Some(summary) = PromotionSummary::of(&self.state, self.sequence + count) else {
            // Events were recorded, so the promotion exists; this cannot happen.
            let error = StoreError::backend("events recorded for a promotion that does not exist");
            fail_all(requests, &error);
            self.reload().await?;
            return Ok(None);
        };
        if let Some(cluster) = &self.shared.cluster {
            if !cluster.holds_lease() {
                // Past our lease another replica may own the promotion; the
                // append would most likely conflict, and nothing decided on
                // this state may be promised.
                let error = StoreError::unavailable("this replica's lease has lapsed");
                fail_all(requests, &error);
                return Err(error);
            }
        }
        // Shared with the committer until it answers; then the writer's
        // alone again, and its events go to the callers without a copy.
        let traceparents = self.traceparents(&requests, &outcomes, events.len());
        let commit = Arc::new(Commit {
            promotion_id: self.promotion_id,
            expected_sequence: self.sequence,
            events,
            summary,
            traceparents,
        });
        let span = self.commit_span(&requests, count);
        Ok(Some(Flight {
            answer: Box::pin(
                answer(Arc::clone(&self.shared), Arc::clone(&commit)).instrument(span),
            ),
            requests,
            outcomes,
            commit,
            started: Instant::now(),
            snapshot: None,
        }))
    }

    /// Per event of the batch, the `traceparent` of the traced request that
    /// recorded it; empty when no request is traced.
    fn traceparents(
        &self,
        requests: &[Request],
        outcomes: &[Result<usize, SecKillError>],
        events: usize,
    ) -> Vec<Option<String>> {
        let Some(context) = self.shared.trace.as_deref() else {
            return Vec::new();
        };
        if requests.iter().all(|request| request.trace.is_none()) {
            return Vec::new();
        }
        let mut traceparents = Vec::with_capacity(events);
        for (request, outcome) in requests.iter().zip(outcomes) {
            let recorded = outcome.as_ref().map_or(0, |&count| count);
            let traceparent = request
                .trace
                .as_deref()
                .and_then(|trace| context.traceparent(&trace.caller));
            traceparents.extend(std::iter::repeat_n(traceparent, recorded));
        }
        traceparents
    }

    /// The batch's `commit` span, when any of its requests is traced: a
    /// child of the first traced request's caller (so sampled with it) and
    /// following from every other's, one span however many it answers.
    fn commit_span(&self, requests: &[Request], events: u64) -> Span {
        let mut traced = requests
            .iter()
            .filter_map(|request| request.trace.as_deref());
        let Some(first) = traced.next() else {
            return Span::none();
        };
        let span = tracing::debug_span!(
            target: TARGET,
            parent: &first.caller,
            "commit",
            promotion = %self.promotion_id,
            events = as_attribute(events),
            requests = as_attribute(requests.len() as u64),
            expected_sequence = as_attribute(self.sequence),
        );
        for other in traced {
            span.follows_from(&other.caller);
        }
        span
    }

    /// The flight's commit is in the store: the writer's position moves on,
    /// the world hears of it, and every request in it is answered.
    /// `decided_past`: the state holds requests decided ahead since.
    fn landed(&mut self, flight: Flight, decided_past: bool) {
        let Flight {
            requests,
            outcomes,
            commit,
            answer,
            snapshot,
            ..
        } = flight;
        // The finished future may still hold its handle on the commit.
        drop(answer);
        let count = commit.events.len() as u64;
        self.sequence += count;
        let metrics = &self.shared.metrics;
        metrics.commits.add(1);
        metrics.committed_events.add(count);
        metrics.committed_commands.add(requests.len() as u64);
        self.shared.publish(&commit.summary);
        if let Some(cluster) = &self.shared.cluster {
            cluster.announce(&commit.summary);
        }
        match snapshot {
            Some(state) => self.maybe_snapshot(Some(state)),
            None if !decided_past => self.maybe_snapshot(None),
            // Decided ahead before the snapshot fell due: the next commit
            // that lands takes it.
            None => {}
        }
        // The committer drops its handle before answering, so this does not
        // copy. It clones only when the committer still holds the commit: an
        // append that timed out here but was found landed (`is_in_store`)
        // while its group is still on its way.
        let commit = Arc::try_unwrap(commit).unwrap_or_else(|shared| (*shared).clone());
        let mut events = commit.events.into_iter();
        for (request, outcome) in requests.into_iter().zip(outcomes) {
            let answer = outcome.map(|n| Done {
                events: events.by_ref().take(n).collect(),
                // Admin commands only: they are rare, grabs are not.
                summary: (!is_grab(&request.command)).then(|| commit.summary.clone()),
            });
            let _ = request.reply.send(answer);
        }
    }
}

/// The store's answer to `commit`, within the store timeout. An answer lost
/// on the way back (a timeout, a broken connection) says nothing about the
/// commit: the store then tells whether it landed.
async fn answer(shared: Arc<Shared>, commit: Arc<Commit>) -> Result<(), StoreError> {
    let timeout = shared.config.store_timeout;
    let append = shared.committer.append(Arc::clone(&commit));
    let outcome = tokio::time::timeout(timeout, append)
        .await
        .unwrap_or(Err(StoreError::Timeout(timeout)));
    match outcome {
        Err(error) if error.outcome_unknown() && is_in_store(&shared, &commit).await => {
            tracing::info!(promotion = %commit.promotion_id, %error, "the commit's answer was lost, but the store holds it");
            Ok(())
        }
        other => other,
    }
}

/// Whether the store holds `commit`'s events as the writer decided them,
/// after an append whose answer was lost. `false` when it cannot tell.
async fn is_in_store(shared: &Shared, commit: &Commit) -> bool {
    let timeout = shared.config.store_timeout;
    let read = shared
        .backend
        .load_events(commit.promotion_id, commit.expected_sequence);
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(stored)) => stored.get(..commit.events.len()) == Some(&commit.events[..]),
        _ => false,
    }
}
