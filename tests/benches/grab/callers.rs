//! The grab bench's callers: closed-loop tasks that grab with fresh
//! customer ids through a [`Grabber`] until the time or the grab budget runs
//! out, and what one workload measured ([`Outcome`]): grabs/s, latency
//! quantiles from one histogram per worker thread, and the process's RSS.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use seckill_app::{SecKill, SecKillError};
use seckill_domain::{CustomerId, PromotionError, PromotionId};

/// How one workload went.
pub(crate) struct Outcome {
    pub(crate) granted: u64,
    pub(crate) rejected: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
    pub(crate) latency: Histogram<u64>,
}

impl Outcome {
    pub(crate) fn row(&self, path: &str, workload: &str) -> String {
        let rss = resident_mb();
        let per_s = |n: u64| n as f64 / self.elapsed.as_secs_f64();
        let ms = |q: f64| self.latency.value_at_quantile(q) as f64 / 1_000.0;
        format!(
            "| {path} | {workload} | {:.0} | {:.0} | {} | {:.3} | {:.3} | {:.3} | {rss:.0} |",
            per_s(self.granted),
            per_s(self.rejected),
            self.errors,
            ms(0.5),
            ms(0.99),
            ms(0.999),
        )
    }
}

/// This process's resident memory in MB, from `/proc/self/status` (0 where
/// that file does not exist).
pub(crate) fn resident_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `c<n>` without `format!`, whose cost would otherwise dominate the
/// sold-out storm this harness measures.
pub(crate) fn customer_id(mut n: u64) -> CustomerId {
    let mut digits = [0u8; 21];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    at -= 1;
    digits[at] = b'c';
    let text = std::str::from_utf8(&digits[at..]).expect("ASCII digits");
    CustomerId::parse(text).expect("valid id")
}

/// Something that can take grabs: the engine, or the naive path.
pub(crate) trait Grabber: Clone + Send + Sync + 'static {
    fn grab(
        &self,
        promotion: PromotionId,
        customer: CustomerId,
    ) -> impl std::future::Future<Output = Result<(), SecKillError>> + Send;
}

impl Grabber for SecKill {
    async fn grab(&self, promotion: PromotionId, customer: CustomerId) -> Result<(), SecKillError> {
        SecKill::grab(self, promotion, customer).await.map(drop)
    }
}

/// Runs `callers` closed-loop tasks over `promotions` (caller i uses promotion
/// i mod len) until `budget` grabs were attempted or time is up.
pub(crate) async fn run<G: Grabber>(
    grabber: &G,
    promotions: &[PromotionId],
    callers: usize,
    budget: u64,
    limit: Duration,
) -> Outcome {
    let next = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Latencies::new());
    let started = Instant::now();
    let deadline = started + limit;
    let tasks: Vec<_> = (0..callers)
        .map(|i| {
            let grabber = grabber.clone();
            let promotion = promotions[i % promotions.len()];
            let next = next.clone();
            let latencies = latencies.clone();
            tokio::spawn(async move {
                let (mut granted, mut rejected, mut errors) = (0u64, 0u64, 0u64);
                // Callers claim ids 64 at a time, so the harness's own shared
                // counter does not dominate what is measured.
                let (mut n, mut end) = (0u64, 0u64);
                loop {
                    // The clock every time: a slow path (the naive one) must
                    // stop on time too. The same reading starts the grab's
                    // latency, so the harness reads the clock twice a grab.
                    let t = Instant::now();
                    if t >= deadline {
                        break;
                    }
                    if n == end {
                        n = next.fetch_add(64, Ordering::Relaxed);
                        end = (n + 64).min(budget);
                        if n >= budget {
                            break;
                        }
                    }
                    let this = n;
                    n += 1;
                    let customer = customer_id(this);
                    match grabber.grab(promotion, customer).await {
                        Ok(()) => granted += 1,
                        Err(SecKillError::Rejected(PromotionError::SoldOut { .. })) => {
                            rejected += 1
                        }
                        Err(_) => errors += 1,
                    }
                    latencies.record(t.elapsed());
                }
                (granted, rejected, errors)
            })
        })
        .collect();
    let (mut granted, mut rejected, mut errors) = (0, 0, 0);
    for task in tasks {
        let (g, r, e) = task.await.expect("caller task");
        granted += g;
        rejected += r;
        errors += e;
    }
    Outcome {
        granted,
        rejected,
        errors,
        elapsed: started.elapsed(),
        latency: latencies.merged(),
    }
}

/// Slots of [`Latencies`]: more than the runtime has worker threads, so
/// each worker records into a slot of its own.
const LATENCY_SLOTS: usize = 16;

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's slot in every [`Latencies`], fixed on first use.
    static SLOT: usize = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % LATENCY_SLOTS;
}

/// One workload's grab latencies, in a histogram per thread. One per caller
/// (1,024 of ~20 KB each) missed the cache on every record: 8 % of the
/// samples of a hot in-memory run, measured with `perf record`, were the
/// harness's own bookkeeping. A thread's own histogram stays in its cache.
struct Latencies {
    // std Mutex: each slot has one thread recording into it, so the lock is
    // never contended; it only makes the slots shareable.
    slots: Vec<Mutex<Histogram<u64>>>,
}

impl Latencies {
    fn new() -> Self {
        Self {
            slots: (0..LATENCY_SLOTS)
                .map(|_| Mutex::new(latency_histogram()))
                .collect(),
        }
    }

    fn record(&self, latency: Duration) {
        let slot = SLOT.with(|slot| *slot);
        let mut histogram = self.slots[slot]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let _ = histogram.record(latency.as_micros() as u64);
    }

    fn merged(&self) -> Histogram<u64> {
        let mut all = latency_histogram();
        for slot in &self.slots {
            let slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            all.add(&*slot).expect("same histogram bounds");
        }
        all
    }
}

/// Latencies in µs, 1 µs to 60 s at 2 significant digits (1 %).
/// Sized once: an auto-resizing histogram grows (and the allocator zeroes
/// fresh pages) as slower grabs arrive, in the middle of the run; with a
/// histogram per caller, 10,000 callers spent more CPU on that than the
/// engine did.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid histogram bounds")
}
