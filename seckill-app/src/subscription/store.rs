//! The port a backend implements for subscriptions: a lease per name, so one
//! consumer is active at a time, and the checkpoint, fenced by the lease's
//! epoch so a consumer that lost its lease can no longer move it.

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::StoreError;

/// A subscription held by one consumer, as the store handed it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionLease {
    /// The subscription's name.
    pub name: String,
    /// Who holds it: one id per running [`Subscription`](super::Subscription).
    pub consumer: Uuid,
    /// Grows by one whenever the name passes to another consumer. A
    /// checkpoint is stored only under the current epoch.
    pub epoch: u64,
    /// The stored checkpoint: the last position handled.
    pub checkpoint: u64,
}

/// Leases and checkpoints of named subscriptions, kept in the backend next to
/// the events they follow.
#[async_trait]
pub trait SubscriptionStore: Send + Sync + 'static {
    /// Claims `name` for `consumer`, or renews its claim, until `lease` from
    /// now. A name never seen before is created with its checkpoint at
    /// `start`. Answers `None` while another consumer holds an unexpired
    /// lease. The epoch stays while the same consumer renews, and grows when
    /// the name changes hands.
    async fn claim_subscription(
        &self,
        name: &str,
        consumer: Uuid,
        lease: Duration,
        start: u64,
    ) -> Result<Option<SubscriptionLease>, StoreError>;

    /// Moves the checkpoint of `lease.name` forward to `position`, if
    /// `lease` is still current (same consumer, same epoch). Answers `false`
    /// when it is not: another consumer took over, and this one must stop.
    async fn save_checkpoint(
        &self,
        lease: &SubscriptionLease,
        position: u64,
    ) -> Result<bool, StoreError>;

    /// Gives the name up, so a standby can take over at once instead of
    /// waiting for the lease to lapse. Does nothing if `lease` is not current.
    async fn release_subscription(&self, lease: &SubscriptionLease) -> Result<(), StoreError>;

    /// The stored checkpoint of `name`, or `None` for a name never claimed.
    async fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError>;
}
