//! Starting a subscription, and its task: claim the name, follow the global order from the
//! checkpoint, deliver in batches, retry failures with backoff, and stand by
//! while another consumer holds the name.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::delivery::{AtLeastOnce, Delivery, DeliveryFailure};
use super::status::{Shared, Subscription};
use super::store::SubscriptionLease;
use super::{EventHandler, Start, SubscriptionError};
use crate::port::{Backend, PositionedEvent};
use crate::projection::PromotionSummary;

/// How long a lease lasts unless renewed; a standby takes over this long
/// after the active consumer died.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);

/// Starts a named subscription; from [`SecKill::subscription`].
///
/// [`SecKill::subscription`]: crate::SecKill::subscription
#[must_use = "a subscription runs only once `run` is called"]
pub struct SubscriptionBuilder {
    backend: Arc<dyn Backend>,
    /// Taken by the task when it starts.
    changes: Option<broadcast::Receiver<PromotionSummary>>,
    name: String,
    start: Start,
    batch_size: usize,
    lease: Duration,
    poll_interval: Duration,
    linger: Duration,
    retry_min: Duration,
    retry_max: Duration,
}

impl SubscriptionBuilder {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        changes: broadcast::Receiver<PromotionSummary>,
        name: String,
    ) -> Self {
        Self {
            backend,
            changes: Some(changes),
            name,
            start: Start::Beginning,
            batch_size: 1_000,
            lease: DEFAULT_LEASE,
            poll_interval: Duration::from_millis(250),
            linger: Duration::from_millis(100),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
        }
    }

    /// Where a name never seen before starts (default: the beginning).
    pub fn start(mut self, start: Start) -> Self {
        self.start = start;
        self
    }

    /// The most events handed over at once (default 1,000; 1 to 10,000).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// How long the name stays held without renewal (default 5 s, at least
    /// 100 ms): how soon a standby takes over from a consumer that died.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How often the feed is read when nothing announced a commit (default
    /// 250 ms): events written by other tools, or an announcement missed.
    pub fn poll_interval(mut self, poll_interval: Duration) -> Self {
        self.poll_interval = poll_interval;
        self
    }

    /// How long a caught-up subscription waits after a batch that was not
    /// full before it reads again (default 100 ms; zero reads at once).
    /// During a sale every commit is a few events: lingering lets them pile
    /// up into one batch and one checkpoint, instead of a read, a delivery
    /// and a checkpoint commit per commit of the sale, which would take the
    /// store's time from the grabs. It bounds the live lag from below.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// The first and the longest wait before a failed event is retried; the
    /// wait doubles in between (default 100 ms to 30 s).
    pub fn retry(mut self, first: Duration, longest: Duration) -> Self {
        self.retry_min = first;
        self.retry_max = longest;
        self
    }

    /// Runs the subscription with at-least-once delivery to `handler`, the
    /// checkpoint kept in the service's backend.
    pub fn run(self, handler: impl EventHandler) -> Result<Subscription, SubscriptionError> {
        let delivery = AtLeastOnce::new(handler, Arc::clone(&self.backend));
        self.run_with(delivery)
    }

    /// Runs the subscription with a delivery of your own, such as the
    /// PostgreSQL adapter's transactional one.
    pub fn run_with(mut self, delivery: impl Delivery) -> Result<Subscription, SubscriptionError> {
        self.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SubscriptionError::NoRuntime);
        }
        let status = Arc::new(Shared::new(&self.name));
        let cancel = CancellationToken::new();
        let runner = Runner {
            changes: self.changes.take(),
            delivery: Box::new(delivery),
            consumer: Uuid::new_v4(),
            status: Arc::clone(&status),
            cancel: cancel.clone(),
            settings: self,
        };
        let task = tokio::spawn(runner.run());
        Ok(Subscription {
            status,
            task: Some(task),
            cancel: Some(cancel.drop_guard()),
        })
    }

    fn validate(&self) -> Result<(), SubscriptionError> {
        let name_ok =
            (1..=200).contains(&self.name.len()) && self.name.bytes().all(|b| b.is_ascii_graphic());
        if !name_ok {
            return Err(SubscriptionError::InvalidName(self.name.clone()));
        }
        let out_of_range = |field, rule| Err(SubscriptionError::OutOfRange { field, rule });
        if !(1..=10_000).contains(&self.batch_size) {
            return out_of_range("batch_size", "must be 1 to 10,000");
        }
        if self.lease < Duration::from_millis(100) {
            return out_of_range("lease", "must be at least 100 ms");
        }
        if self.poll_interval.is_zero() {
            return out_of_range("poll_interval", "must not be zero");
        }
        if self.retry_min.is_zero() || self.retry_max < self.retry_min {
            return out_of_range("retry", "must be nonzero, the longest at least the first");
        }
        Ok(())
    }
}

/// Why the active phase ended.
enum Ended {
    /// Stopped by its handle: the lease was given up.
    Stopped,
    /// The lease went to another consumer (or could not be renewed in time).
    Lost,
    /// The store failed around a checkpoint: claim again, to resume from
    /// the checkpoint as stored rather than as this task believes it.
    Resume,
}

struct Runner {
    /// Commit announcements, a hint that the feed has grown.
    changes: Option<broadcast::Receiver<PromotionSummary>>,
    delivery: Box<dyn Delivery>,
    consumer: Uuid,
    status: Arc<Shared>,
    cancel: CancellationToken,
    settings: SubscriptionBuilder,
}

impl Runner {
    async fn run(mut self) {
        let mut backoff = Backoff::new(self.settings.retry_min, self.settings.retry_max);
        while !self.cancel.is_cancelled() {
            match self.claim().await {
                Ok(Some(lease)) => {
                    backoff.reset();
                    tracing::info!(subscription = %self.status.name, epoch = lease.epoch, checkpoint = lease.checkpoint, "subscription active here");
                    self.status.set_active(true);
                    let ended = self.follow(lease).await;
                    self.status.set_active(false);
                    match ended {
                        Ended::Stopped => return,
                        Ended::Lost => {
                            tracing::warn!(subscription = %self.status.name, "subscription lease lost; standing by")
                        }
                        Ended::Resume => {}
                    }
                }
                Ok(None) => {
                    // Standing by: keep the lag visible from the stored checkpoint.
                    self.observe_from_store().await;
                    self.pause(self.settings.lease / 3).await;
                }
                Err(error) => {
                    self.status
                        .failed(format!("claiming the subscription: {error}"));
                    tracing::warn!(subscription = %self.status.name, %error, "cannot claim the subscription; retrying");
                    self.pause(backoff.next()).await;
                }
            }
        }
    }

    /// Claims the name, creating it at its start if it was never seen.
    async fn claim(&self) -> Result<Option<SubscriptionLease>, crate::StoreError> {
        let backend = &self.settings.backend;
        let name = &self.status.name;
        let start = match self.settings.start {
            Start::Beginning => 0,
            Start::After(position) => position,
            // Only read the head for a name that has no checkpoint yet.
            Start::Now => match backend.checkpoint(name).await? {
                Some(position) => position,
                None => backend.head_position().await?,
            },
        };
        backend
            .claim_subscription(name, self.consumer, self.settings.lease, start)
            .await
    }

    async fn observe_from_store(&self) {
        let backend = &self.settings.backend;
        if let (Ok(Some(position)), Ok(head)) = (
            backend.checkpoint(&self.status.name).await,
            backend.head_position().await,
        ) {
            self.status.set_position(position);
            self.status.set_head(head);
        }
    }

    /// Sleeps, or returns early when stopped.
    async fn pause(&self, duration: Duration) {
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            () = self.cancel.cancelled() => {}
        }
    }

    /// The active phase: deliver every event after the checkpoint until
    /// stopped or taken over.
    async fn follow(&mut self, lease: SubscriptionLease) -> Ended {
        // A keeper task renews the lease while deliveries run, however long
        // one takes. `gone` fires when it cannot; `lost` then too, and also
        // on a stop, for the waits between batches.
        let lost = self.cancel.child_token();
        let gone = CancellationToken::new();
        let keeper = tokio::spawn(keep_lease(
            Arc::clone(&self.settings.backend),
            lease.clone(),
            self.settings.lease,
            [lost.clone(), gone.clone()],
        ));
        let ended = self.deliver_all(&lease, &lost, &gone).await;
        keeper.abort();
        if let Ended::Stopped = ended {
            if let Err(error) = self.settings.backend.release_subscription(&lease).await {
                tracing::warn!(subscription = %self.status.name, %error, "lease not released; it lapses instead");
            }
        }
        ended
    }

    async fn deliver_all(
        &mut self,
        lease: &SubscriptionLease,
        lost: &CancellationToken,
        gone: &CancellationToken,
    ) -> Ended {
        let settings = &self.settings;
        let status = &self.status;
        let mut cursor = lease.checkpoint;
        status.set_position(cursor);
        let mut limit = settings.batch_size;
        let mut backoff = Backoff::new(settings.retry_min, settings.retry_max);
        let mut head_read = Instant::now() - Duration::from_secs(1);
        let ended = || {
            if self.cancel.is_cancelled() {
                Ended::Stopped
            } else {
                Ended::Lost
            }
        };
        loop {
            if lost.is_cancelled() {
                return ended();
            }
            // The head is for the lag, and to see a checkpoint past it: read
            // it at most once a second, and first thing after each claim.
            if head_read.elapsed() >= Duration::from_secs(1) {
                if let Ok(head) = settings.backend.head_position().await {
                    status.set_head(head.max(cursor));
                    check_ahead(status, cursor, head);
                }
                head_read = Instant::now();
            }
            let page = match settings.backend.read_all(cursor, limit).await {
                Ok(page) => page,
                Err(error) => {
                    status.failed(format!("reading after position {cursor}: {error}"));
                    tracing::warn!(subscription = %status.name, %error, "cannot read the feed; retrying");
                    sleep_or(backoff.next(), lost).await;
                    continue;
                }
            };
            if page.is_empty() {
                status.set_head(cursor.max(status.head.load(Ordering::Relaxed)));
                wait_for_commits(&mut self.changes, settings.poll_interval, lost).await;
                continue;
            }
            // The page shows the head is at least its last event: the lag
            // in time counts from now, not from the next head read.
            if let Some(last) = page.last() {
                status.set_head(last.position.max(status.head.load(Ordering::Relaxed)));
            }
            // A panicking handler is a failing one: the event is retried,
            // and the subscription lives on.
            // A lost lease interrupts the batch at once (another consumer
            // may be delivering it); a stop lets it finish, within a lease,
            // so a polite stop hands over without a repeat.
            let stop_grace = async {
                self.cancel.cancelled().await;
                tokio::time::sleep(settings.lease).await;
            };
            let delivered = tokio::select! {
                result = AssertUnwindSafe(self.delivery.deliver(lease, &page)).catch_unwind() => result,
                () = gone.cancelled() => return Ended::Lost,
                () = stop_grace => return Ended::Stopped,
            };
            let delivered = delivered.unwrap_or_else(|panic| {
                Err(DeliveryFailure::Handler {
                    checkpointed: 0,
                    failed_at: 0,
                    error: super::panic_message(panic.as_ref()).into(),
                })
            });
            match delivered {
                Ok(()) => {
                    cursor = page.last().map_or(cursor, |last| last.position);
                    status.handled(page.len());
                    status.set_position(cursor);
                    let caught_up = page.len() < limit;
                    limit = settings.batch_size;
                    backoff.reset();
                    if caught_up && !settings.linger.is_zero() {
                        sleep_or(settings.linger, lost).await;
                    }
                }
                Err(DeliveryFailure::Handler {
                    checkpointed,
                    failed_at,
                    error,
                }) => {
                    let checkpointed = checkpointed.min(page.len());
                    if checkpointed > 0 {
                        cursor = page[checkpointed - 1].position;
                        status.handled(checkpointed);
                        status.set_position(cursor);
                    }
                    let failed = page
                        .get(failed_at)
                        .unwrap_or(&page[checkpointed.min(page.len() - 1)]);
                    status.failed(describe_failure(failed, &error));
                    tracing::warn!(
                        subscription = %status.name,
                        position = failed.position,
                        promotion = %failed.promotion_id,
                        sequence = failed.sequence,
                        event = %cqrs_es::DomainEvent::event_type(&failed.event),
                        error = %error,
                        "handler failed; the event is retried"
                    );
                    if failed_at > checkpointed {
                        // The events before the failing one were rolled back
                        // with it: hand them again alone, at once.
                        limit = failed_at - checkpointed;
                    } else {
                        limit = 1;
                        sleep_or(backoff.next(), lost).await;
                    }
                }
                Err(DeliveryFailure::Fenced) => return ended(),
                Err(DeliveryFailure::Store(error)) => {
                    // The checkpoint may or may not have moved (a commit
                    // whose answer was lost): only the stored one is true.
                    status.failed(format!(
                        "storing the checkpoint after position {cursor}: {error}"
                    ));
                    tracing::warn!(subscription = %status.name, %error, "checkpoint not stored; resuming from the stored one");
                    sleep_or(backoff.next(), lost).await;
                    return match ended() {
                        Ended::Stopped => Ended::Stopped,
                        _ => Ended::Resume,
                    };
                }
            }
        }
    }
}

/// A checkpoint past the head means the store lost events the subscription
/// had handled: a failover to a standby that had not received them
/// (asynchronous replication). New events then take those positions again
/// and are not delivered. Never silent: an error when it is seen, a warning
/// when the head reaches the checkpoint again, the status's `ahead`, and the
/// `checkpoint_ahead` gauge.
fn check_ahead(status: &Shared, cursor: u64, head: u64) {
    let ahead = cursor.saturating_sub(head);
    if !status.set_ahead(ahead) {
        return;
    }
    if ahead > 0 {
        tracing::error!(
            subscription = %status.name,
            checkpoint = cursor,
            head,
            ahead,
            "subscription checkpoint is past the newest event: the store lost events it had handled (a failover without synchronous replication?); new events at those positions are not delivered"
        );
    } else {
        tracing::warn!(subscription = %status.name, head, "the newest event has reached the subscription's checkpoint again");
    }
}

/// Renews the lease every third of its length; cancels `lost` once it is
/// gone to another consumer or has lapsed unrenewed.
async fn keep_lease(
    backend: Arc<dyn Backend>,
    lease: SubscriptionLease,
    length: Duration,
    lost: [CancellationToken; 2],
) {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(length / 3).await;
        match backend
            .claim_subscription(&lease.name, lease.consumer, length, lease.checkpoint)
            .await
        {
            Ok(Some(held)) if held.epoch == lease.epoch => renewed = Instant::now(),
            Ok(_) => break,
            Err(error) => {
                tracing::warn!(subscription = %lease.name, %error, "subscription lease not renewed");
                // Past its length a standby may hold it: stop delivering.
                if renewed.elapsed() >= length {
                    break;
                }
            }
        }
    }
    lost.iter().for_each(CancellationToken::cancel);
}

/// Waits for an announced commit, the poll interval, or the end.
async fn wait_for_commits(
    changes: &mut Option<broadcast::Receiver<PromotionSummary>>,
    poll: Duration,
    lost: &CancellationToken,
) {
    let Some(receiver) = changes else {
        return sleep_or(poll, lost).await;
    };
    tokio::select! {
        // Lagged is a wake-up too; a closed feed leaves the poll.
        result = receiver.recv() => {
            if let Err(broadcast::error::RecvError::Closed) = result {
                *changes = None;
            }
        }
        () = tokio::time::sleep(poll) => {}
        () = lost.cancelled() => {}
    }
}

async fn sleep_or(duration: Duration, lost: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = lost.cancelled() => {}
    }
}

fn describe_failure(event: &PositionedEvent, error: &super::HandlerError) -> String {
    format!(
        "event at position {} ({} #{} of promotion {}): {error}",
        event.position,
        cqrs_es::DomainEvent::event_type(&event.event),
        event.sequence,
        event.promotion_id
    )
}

/// Exponential backoff with jitter, so standbys and retries do not march in step.
struct Backoff {
    first: Duration,
    longest: Duration,
    next: Duration,
}

impl Backoff {
    fn new(first: Duration, longest: Duration) -> Self {
        Self {
            first,
            longest,
            next: first,
        }
    }

    fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.longest);
        // Up to a quarter more, at random.
        wait + wait.mul_f64(fastrand::f64() / 4.0)
    }

    fn reset(&mut self) {
        self.next = self.first;
    }
}
