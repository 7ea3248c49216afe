//! Who hears of each commit: the feed of every promotion's summary, and
//! the watchers of one promotion, whose channel is dropped once nobody
//! watches.

use std::collections::hash_map;
use std::sync::{Arc, PoisonError, Weak};

use seckill_domain::PromotionId;
use tokio::sync::{broadcast, watch};

use super::{Engine, Shared};
use crate::projection::PromotionSummary;

impl Engine {
    /// A feed of every promotion's summary after each commit that changed it.
    pub(crate) fn watch(&self) -> broadcast::Receiver<PromotionSummary> {
        self.shared.changes.subscribe()
    }

    /// Watches one promotion, starting from `current` (or a newer summary
    /// already held): the receiver holds the latest summary after every
    /// commit from now on. The channel is dropped once nobody watches.
    pub(crate) fn watch_promotion(
        &self,
        current: PromotionSummary,
    ) -> watch::Receiver<PromotionSummary> {
        let promotion_id = current.promotion_id;
        let mut watched = self
            .shared
            .watched
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match watched.entry(promotion_id) {
            hash_map::Entry::Occupied(entry) => {
                let sender = entry.get();
                sender.send_if_modified(|latest| advance(latest, &current));
                sender.subscribe()
            }
            hash_map::Entry::Vacant(entry) => {
                let (sender, receiver) = watch::channel(current);
                let sender = Arc::new(sender);
                entry.insert(Arc::clone(&sender));
                tokio::spawn(forget_when_unwatched(
                    Arc::downgrade(&self.shared),
                    promotion_id,
                    sender,
                ));
                receiver
            }
        }
    }

    /// Offers `summary` to the promotion's watchers, who take it if it is
    /// newer than what they hold.
    pub(crate) fn offer(&self, summary: &PromotionSummary) {
        self.shared.offer(summary);
    }
}

impl Shared {
    /// Tells everyone watching that a commit changed `summary`'s promotion:
    /// the feed of all promotions, and the promotion's own watchers.
    pub(super) fn publish(&self, summary: &PromotionSummary) {
        // No receivers is fine: nobody is watching.
        let _ = self.changes.send(summary.clone());
        self.offer(summary);
    }

    /// Hands `summary` to its promotion's watchers, if any, unless they
    /// hold a newer one (a commit announced by another replica may arrive
    /// after a newer read).
    pub(super) fn offer(&self, summary: &PromotionSummary) {
        let watched = self.watched.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = watched.get(&summary.promotion_id) {
            sender.send_if_modified(|latest| advance(latest, summary));
        }
    }
}

/// Replaces `latest` by `newer` if `newer` includes more events; whether it did.
fn advance(latest: &mut PromotionSummary, newer: &PromotionSummary) -> bool {
    if newer.last_sequence > latest.last_sequence {
        *latest = newer.clone();
        true
    } else {
        false
    }
}

/// Drops a promotion's watch channel once its last receiver is gone, so a
/// long-running service does not keep one for every promotion ever watched.
/// Holds the engine weakly: it must not keep a dropped engine alive.
async fn forget_when_unwatched(
    shared: Weak<Shared>,
    promotion_id: PromotionId,
    sender: Arc<watch::Sender<PromotionSummary>>,
) {
    loop {
        sender.closed().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut watched = shared
            .watched
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !watched
            .get(&promotion_id)
            .is_some_and(|current| Arc::ptr_eq(current, &sender))
        {
            return;
        }
        // Checked under the lock new watchers subscribe under: one who came
        // since `closed` keeps the channel, and this waits again.
        if sender.receiver_count() == 0 {
            watched.remove(&promotion_id);
            return;
        }
    }
}
