//! The race: workers take customers off a shared counter, and each customer
//! grabs once, retrying only while the server answers 503.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use reqwest::StatusCode;
use uuid::Uuid;

use super::{new_histogram, LoadConfig, LoadError};
use crate::{Client, Grab};

/// Most 503 retries of one grab: a server that stays overloaded this long is
/// reported rather than waited for.
const MAX_RETRIES: u32 = 50;

/// One customer's final answer: how the grab ended, or the status of an
/// answer that was no grab outcome at all.
pub(super) type Answer = Result<Grab, StatusCode>;

/// What the race found: the answers by customer index, and how it went.
pub(super) struct Raced {
    /// `(customer index, final answer)`, in no particular order.
    pub(super) answers: Vec<(usize, Answer)>,
    /// Latency of every grab request, retries included, in microseconds.
    pub(super) latency: Histogram<u64>,
    /// 503 answers that were retried.
    pub(super) retries: u64,
}

/// The shared state of the racing workers.
pub(super) struct Race {
    client: Client,
    promotion_id: Uuid,
    prefix: String,
    // Atomic, not a lock: each worker only takes the next index.
    next: AtomicUsize,
    customers: usize,
    progress: ProgressBar,
}

impl Race {
    /// A race of `config.customers` customers for `promotion_id`.
    pub(super) fn new(
        client: Client,
        promotion_id: Uuid,
        config: &LoadConfig,
        progress: ProgressBar,
    ) -> Self {
        Self {
            client,
            promotion_id,
            prefix: config.customer_prefix.clone(),
            next: AtomicUsize::new(0),
            customers: config.customers,
            progress,
        }
    }

    /// Runs `concurrency` workers (at least one) until every customer grabbed.
    pub(super) async fn run(self: Arc<Self>, concurrency: usize) -> Result<Raced, LoadError> {
        let workers: Vec<_> = (0..concurrency.max(1))
            .map(|_| tokio::spawn(Arc::clone(&self).work()))
            .collect();
        let mut raced = Raced {
            answers: Vec::with_capacity(self.customers),
            latency: new_histogram(),
            retries: 0,
        };
        for worker in workers {
            let mine = worker.await??;
            raced.answers.extend(mine.answers);
            let _ = raced.latency.add(&mine.latency);
            raced.retries += mine.retries;
        }
        Ok(raced)
    }

    /// Takes customers off the shared counter until none are left.
    async fn work(self: Arc<Self>) -> Result<Raced, LoadError> {
        let mut mine = Raced {
            answers: Vec::new(),
            latency: new_histogram(),
            retries: 0,
        };
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            if index >= self.customers {
                return Ok(mine);
            }
            let customer = format!("{}{index}", self.prefix);
            let answer = self.grab(&customer, &mut mine).await?;
            mine.answers.push((index, answer));
            self.progress.inc(1);
        }
    }

    /// One customer's grab, retried while the answer is a 503.
    async fn grab(&self, customer: &str, mine: &mut Raced) -> Result<Answer, LoadError> {
        let mut attempt = 0;
        loop {
            let sent = Instant::now();
            let answer = self.client.grab(self.promotion_id, customer).await;
            let _ = mine
                .latency
                .record(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
            let unavailable = match &answer {
                Ok(grab) => grab.is_unavailable(),
                Err(error) => error.status() == Some(StatusCode::SERVICE_UNAVAILABLE),
            };
            if unavailable && attempt < MAX_RETRIES {
                attempt += 1;
                mine.retries += 1;
                // Spread retries out instead of hammering a full queue.
                tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt))).await;
                continue;
            }
            return match answer {
                // A retry after a 503 that was committed after all: the
                // problem carries the coupon, so it counts as won.
                Ok(Grab::AlreadyGrabbed(coupon)) if attempt > 0 => Ok(Ok(Grab::Won(coupon))),
                Ok(grab) => Ok(Ok(grab)),
                // Answered, but with no grab outcome: counted by status.
                Err(error) => match error.status() {
                    Some(status) => Ok(Err(status)),
                    None => Err(error.into()),
                },
            };
        }
    }
}
