//! [`Sale`]: a sale that goes on through a failover, for the failover test
//! and the failover benchmark.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seckill_client::api::CouponDto;
use seckill_client::{Client, Grab};
use tokio_util::sync::CancellationToken;

/// Closed-loop grabbers, each with customers of its own, retrying a 503
/// (which acknowledges nothing) until answered.
pub(crate) struct Sale {
    acknowledged: Arc<Mutex<HashMap<String, CouponDto>>>,
    won_at: Arc<Mutex<Vec<Instant>>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Sale {
    /// `workers` grabbers, their customers named after `round`.
    pub(crate) fn start(
        client: &Client,
        promotion: uuid::Uuid,
        round: &str,
        workers: usize,
    ) -> Self {
        let acknowledged = Arc::new(Mutex::new(HashMap::new()));
        let won_at = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let tasks = (0..workers)
            .map(|worker| {
                let (client, acknowledged, won_at, stop) = (
                    client.clone(),
                    Arc::clone(&acknowledged),
                    Arc::clone(&won_at),
                    stop.clone(),
                );
                let round = round.to_owned();
                tokio::spawn(async move {
                    let mut i = 0;
                    while !stop.is_cancelled() {
                        let customer = format!("{round}-{worker}-{i}");
                        loop {
                            match client.grab(promotion, &customer).await {
                                Ok(Grab::Won(coupon)) => {
                                    won_at.lock().unwrap().push(Instant::now());
                                    acknowledged.lock().unwrap().insert(customer, coupon);
                                    break;
                                }
                                Ok(Grab::AlreadyGrabbed(coupon)) => {
                                    acknowledged.lock().unwrap().insert(customer, coupon);
                                    break;
                                }
                                Ok(grab) if grab.is_unavailable() => {}
                                Err(_) => {}
                                Ok(other) => panic!("{customer}: {other:?}"),
                            }
                            if stop.is_cancelled() {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        Self {
            acknowledged,
            won_at,
            stop,
            tasks,
        }
    }

    /// Until a grab is won after `since`, at most `within`; how long that
    /// took.
    pub(crate) async fn won_after(&self, since: Instant, within: Duration) -> Duration {
        loop {
            if let Some(&at) = self.won_at.lock().unwrap().iter().find(|&&at| at > since) {
                return at - since;
            }
            assert!(since.elapsed() < within, "no grab won for {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The longest time without a won grab from `since` until now.
    pub(crate) fn longest_gap(&self, since: Instant) -> Duration {
        longest_gap(&self.won_at.lock().unwrap(), since)
    }

    /// How many grabs were won so far.
    pub(crate) fn won(&self) -> usize {
        self.won_at.lock().unwrap().len()
    }

    /// Stops the grabbers; each customer's acknowledged coupon.
    pub(crate) async fn stop(self) -> HashMap<String, CouponDto> {
        self.stop.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
        Arc::try_unwrap(self.acknowledged)
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

/// The longest time from `since` until now without one of `moments`.
pub(crate) fn longest_gap(moments: &[Instant], since: Instant) -> Duration {
    let mut after: Vec<Instant> = moments.iter().copied().filter(|&at| at > since).collect();
    after.sort_unstable();
    after.push(Instant::now());
    let mut previous = since;
    let mut longest = Duration::ZERO;
    for at in after {
        longest = longest.max(at - previous);
        previous = at;
    }
    longest
}
