//! The ownership port: which replica runs a promotion's writer, when several
//! processes serve one store.
//!
//! The engine's promise is one writer per promotion. Inside a process the
//! engine keeps it; across processes an [`Ownership`] backend does: it
//! records, in the store every replica already shares, which live replica
//! owns each promotion. A replica that is not the owner hands the command to
//! the one that is (see `docs/adr/0008-promotion-ownership-by-lease.md`).
//!
//! Ownership is about throughput, not safety: optimistic concurrency on the
//! expected sequence still refuses any append from a stale owner, so two
//! replicas that both believe they own a promotion can never oversell it or
//! grant a coupon twice. They only waste each other's work until one learns.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use seckill_domain::PromotionId;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::error::StoreError;
use crate::projection::PromotionSummary;

/// Which process this is, among the replicas of one deployment. A new one
/// every start, so a restarted process never mistakes an old lease for its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaId(Uuid);

impl ReplicaId {
    /// A fresh, random id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// An id from a UUID (as stored by an [`Ownership`] backend).
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The id as a UUID.
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A replica as its peers see it: who it is and where it takes forwarded
/// commands.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Replica {
    /// Its id.
    pub id: ReplicaId,
    /// Where peers reach it, for example `http://10.0.0.7:3000`. Opaque to
    /// the library; the forwarding transport gives it meaning.
    pub address: String,
}

/// Who runs a promotion's writer, as an [`Ownership`] backend answers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// This replica does. `epoch` grows by one each time the promotion
    /// changes hands, so a log line or a metric can tell tenures apart.
    Owned {
        /// The tenure's number, from 1.
        epoch: u64,
        /// Whether this very claim took the promotion from a lapsed or
        /// departed owner (a failover, counted in `seckill_takeovers_total`).
        taken_over: bool,
    },
    /// Another live replica does; send the command there.
    OwnedBy {
        /// The owner.
        owner: Replica,
        /// Its tenure's number.
        epoch: u64,
    },
}

/// Records which live replica owns each promotion.
///
/// The contract every backend keeps:
/// * **One owner at a time.** Concurrent [`claim`](Self::claim)s of one
///   promotion, from any replicas, all name the same owner.
/// * **Owners are live.** A replica is live while its lease is: it renews it
///   with [`heartbeat`](Self::heartbeat) at least every
///   [`lease`](Self::lease) / 3. A promotion whose owner's lease lapsed is
///   claimed anew; the old owner is no longer named, and the epoch grows.
/// * **Spread.** A promotion with no live owner goes to a replica chosen by
///   the promotion's id among the live ones (rendezvous hashing), not to
///   whoever asked first, so many promotions spread over every replica.
/// * **Hand-over.** [`leave`](Self::leave) ends this replica's lease at once,
///   so its promotions are claimed by the others on their next command
///   rather than after the lease runs out.
/// * **Announcements** (optional, best effort). What an owner commits it
///   [`announce`](Self::announce)s; every other replica's
///   [`listen`](Self::listen) stream carries it, so their live feeds show
///   every commit and a finished promotion is answered from memory
///   everywhere. A lost announcement costs only a late update: the owner
///   still answers everything that is forwarded to it.
#[async_trait]
pub trait Ownership: Send + Sync + 'static {
    /// This replica.
    fn replica(&self) -> &Replica;

    /// How long a lease lasts without a heartbeat: the bound on how long a
    /// dead owner's promotions wait before another replica takes them.
    fn lease(&self) -> Duration;

    /// Joins, or renews this replica's lease for another [`lease`](Self::lease).
    /// Returns the live replicas, this one included.
    async fn heartbeat(&self) -> Result<Vec<Replica>, StoreError>;

    /// Who owns `promotion_id`, assigning it to a live replica first if it
    /// has no live owner.
    async fn claim(&self, promotion_id: PromotionId) -> Result<Claim, StoreError>;

    /// Ends this replica's lease at once: every promotion it owns is claimed
    /// anew by the next replica that asks.
    async fn leave(&self) -> Result<(), StoreError>;

    /// Tells the other replicas the summaries of commits made here. The
    /// default tells nobody.
    async fn announce(&self, summaries: &[PromotionSummary]) -> Result<(), StoreError> {
        let _ = summaries;
        Ok(())
    }

    /// Starts receiving the summaries the other replicas announce (never
    /// this one's own). `None` if the backend cannot; the default.
    async fn listen(&self) -> Result<Option<mpsc::Receiver<PromotionSummary>>, StoreError> {
        Ok(None)
    }
}
