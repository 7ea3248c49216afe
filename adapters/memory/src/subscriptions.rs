//! Subscription leases and checkpoints in memory: the same rules as the
//! PostgreSQL table, for consumers in one process.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use seckill_app::subscription::{SubscriptionLease, SubscriptionStore};
use seckill_app::StoreError;
use uuid::Uuid;

use crate::MemoryStore;

/// Every subscription's row.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    // std Mutex, not tokio's: each call is one map lookup, never held across
    // an `.await`. Apart from the events' lock: checkpoints never need to
    // change together with an append.
    rows: Mutex<HashMap<String, Row>>,
}

#[derive(Debug)]
struct Row {
    position: u64,
    consumer: Option<Uuid>,
    epoch: u64,
    expires: Instant,
}

impl Subscriptions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Row>> {
        // Each mutation is a few field writes after its checks: a panic
        // elsewhere cannot leave a row half-written.
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl SubscriptionStore for MemoryStore {
    async fn claim_subscription(
        &self,
        name: &str,
        consumer: Uuid,
        lease: Duration,
        start: u64,
    ) -> Result<Option<SubscriptionLease>, StoreError> {
        let now = Instant::now();
        let mut rows = self.subscriptions.lock();
        let row = rows.entry(name.to_owned()).or_insert(Row {
            position: start,
            consumer: None,
            epoch: 0,
            expires: now,
        });
        let free = row.consumer.is_none() || row.expires <= now;
        if row.consumer != Some(consumer) {
            if !free {
                return Ok(None);
            }
            row.consumer = Some(consumer);
            row.epoch += 1;
        }
        row.expires = now + lease;
        Ok(Some(SubscriptionLease {
            name: name.to_owned(),
            consumer,
            epoch: row.epoch,
            checkpoint: row.position,
        }))
    }

    async fn save_checkpoint(
        &self,
        lease: &SubscriptionLease,
        position: u64,
    ) -> Result<bool, StoreError> {
        let mut rows = self.subscriptions.lock();
        match rows.get_mut(&lease.name) {
            Some(row) if row.consumer == Some(lease.consumer) && row.epoch == lease.epoch => {
                row.position = row.position.max(position);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_subscription(&self, lease: &SubscriptionLease) -> Result<(), StoreError> {
        let mut rows = self.subscriptions.lock();
        if let Some(row) = rows.get_mut(&lease.name) {
            if row.consumer == Some(lease.consumer) && row.epoch == lease.epoch {
                row.consumer = None;
            }
        }
        Ok(())
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.subscriptions.lock().get(name).map(|row| row.position))
    }
}
