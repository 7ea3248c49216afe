//! The `Ownership` port on PostgreSQL: a lease row per replica and an owner
//! row per promotion, in the database the replicas already share
//! (`docs/adr/0008-promotion-ownership-by-lease.md`).
//!
//! Why leases and not advisory locks: a lock held by a session lives as long
//! as the session, so a replica that hangs (a stopped process, a stuck
//! runtime) would keep its promotions for ever. A lease lapses unless it is
//! renewed, and only the database's clock is compared, so the replicas'
//! clocks never matter.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use seckill_app::cluster::{Claim, Ownership, Replica, ReplicaId};
use seckill_app::{PromotionSummary, StoreError};
use seckill_domain::PromotionId;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::error::store_error;
use crate::store::PgStore;

const HEARTBEAT: &str = include_str!("../sql/heartbeat.sql");
const CLAIM: &str = include_str!("../sql/claim.sql");
const OWNER: &str = include_str!("../sql/owner.sql");
const LEAVE: &str = include_str!("../sql/leave.sql");
const ANNOUNCE: &str = include_str!("../sql/announce.sql");

/// The channel commits are announced on.
const CHANNEL: &str = "seckill_commits";

/// Announcements a listener holds before it drops new ones (a replica too
/// busy to read them only shows a late update).
const LISTEN_QUEUE: usize = 16_384;

/// One announcement as it crosses `NOTIFY`: who committed, and the summary
/// after it. A summary is a few hundred bytes, well under NOTIFY's 8,000.
#[derive(Serialize, Deserialize)]
struct Announcement {
    replica: Uuid,
    /// The announcing store's schema. NOTIFY channels are per database, so
    /// another SecKill in another schema of it hears us too, and must not
    /// show our promotions. Missing in announcements from before schemas:
    /// those came from `public`.
    #[serde(default)]
    schema: Option<String>,
    summary: PromotionSummary,
}

/// The lease a replica holds unless told otherwise: a dead owner's
/// promotions are taken over within this, plus one claim.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(3);

/// One replica's view of promotion ownership, stored in PostgreSQL.
///
/// Its queries run on a pool of their own (two connections), so a heartbeat
/// never waits behind appends for a connection and a busy replica does not
/// lose its lease for being busy.
#[derive(Debug, Clone)]
pub struct PgOwnership {
    pool: PgPool,
    replica: Replica,
    lease: Duration,
    /// The store's schema, to tell our announcements from another
    /// installation's; shared by clones.
    schema: Arc<str>,
}

impl PgOwnership {
    /// Ownership for `replica` on `store`'s database, with leases of `lease`.
    ///
    /// The tables come with `store`'s migrations. Nothing is written until
    /// the first [`heartbeat`](Ownership::heartbeat).
    pub fn new(store: &PgStore, replica: Replica, lease: Duration) -> Self {
        let options = store.pool().connect_options().as_ref().clone();
        // Two connections: the heartbeat and a claim may run at once; claims
        // are rare (once per promotion per replica) so they never queue long.
        // The timeout keeps a heartbeat from waiting past the lease it renews.
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(lease / 3)
            .connect_lazy_with(options);
        Self {
            pool,
            replica,
            lease,
            schema: store.schema().into(),
        }
    }

    fn error(&self, doing: &str, source: sqlx::Error) -> StoreError {
        store_error(doing, source, None)
    }

    /// The live owner of `promotion_id`, if it has one.
    async fn owner(&self, promotion_id: PromotionId) -> Result<Option<Claim>, StoreError> {
        let row: Option<(Uuid, String, i64)> = sqlx::query_as(OWNER)
            .bind(promotion_id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| self.error("reading a promotion's owner", error))?;
        Ok(row.map(|(id, address, epoch)| {
            self.claim_of(ReplicaId::from_uuid(id), Some(address), epoch, false)
        }))
    }

    fn claim_of(
        &self,
        owner: ReplicaId,
        address: Option<String>,
        epoch: i64,
        taken_over: bool,
    ) -> Claim {
        let epoch = u64::try_from(epoch).unwrap_or_default();
        if owner == self.replica.id {
            Claim::Owned { epoch, taken_over }
        } else {
            Claim::OwnedBy {
                owner: Replica {
                    id: owner,
                    address: address.unwrap_or_default(),
                },
                epoch,
            }
        }
    }
}

#[async_trait]
impl Ownership for PgOwnership {
    fn replica(&self) -> &Replica {
        &self.replica
    }

    fn lease(&self) -> Duration {
        self.lease
    }

    async fn heartbeat(&self) -> Result<Vec<Replica>, StoreError> {
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let rows: Vec<(Uuid, String)> = sqlx::query_as(HEARTBEAT)
            .bind(self.replica.id.as_uuid())
            .bind(&self.replica.address)
            .bind(lease_ms as f64)
            .fetch_all(&self.pool)
            .await
            .map_err(|error| self.error("renewing the replica's lease", error))?;
        Ok(rows
            .into_iter()
            .map(|(id, address)| Replica {
                id: ReplicaId::from_uuid(id),
                address,
            })
            .collect())
    }

    async fn claim(&self, promotion_id: PromotionId) -> Result<Claim, StoreError> {
        // Two statements, because one cannot both claim and read a row that
        // a concurrent claim committed after it began. Between them the owner
        // can lapse again, hence the loop; each round sees a newer database.
        for _ in 0..4 {
            let claimed: Option<(Uuid, i64)> = sqlx::query_as(CLAIM)
                .bind(promotion_id.as_uuid())
                .bind(self.replica.id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(|error| self.error("claiming a promotion", error))?;
            if let Some((owner, epoch)) = claimed {
                let owner = ReplicaId::from_uuid(owner);
                if owner == self.replica.id {
                    // A claim that bumped the epoch replaced a lapsed owner.
                    return Ok(self.claim_of(owner, None, epoch, epoch > 1));
                }
                // Assigned to a peer: read its address with its lease.
            }
            if let Some(claim) = self.owner(promotion_id).await? {
                return Ok(claim);
            }
        }
        Err(StoreError::backend(format!(
            "promotion {promotion_id}: its owner kept changing while it was claimed"
        )))
    }

    async fn announce(&self, summaries: &[PromotionSummary]) -> Result<(), StoreError> {
        let replica = self.replica.id.as_uuid();
        let payloads: Vec<String> = summaries
            .iter()
            .filter_map(|summary| {
                let announcement = Announcement {
                    replica,
                    schema: Some(self.schema.to_string()),
                    summary: summary.clone(),
                };
                serde_json::to_string(&announcement).ok()
            })
            .collect();
        sqlx::query(ANNOUNCE)
            .bind(payloads)
            .execute(&self.pool)
            .await
            .map_err(|error| self.error("announcing commits", error))?;
        Ok(())
    }

    async fn listen(&self) -> Result<Option<mpsc::Receiver<PromotionSummary>>, StoreError> {
        // A connection of its own, outside the pool: LISTEN holds it for as
        // long as the replica runs.
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(|error| self.error("listening for announcements", error))?;
        listener
            .listen(CHANNEL)
            .await
            .map_err(|error| self.error("listening for announcements", error))?;
        let (sender, receiver) = mpsc::channel(LISTEN_QUEUE);
        let me = self.replica.id.as_uuid();
        let schema = Arc::clone(&self.schema);
        tokio::spawn(async move {
            loop {
                // `recv` reconnects after a lost connection; what was
                // announced meanwhile is lost, which announcements allow.
                let notification = match listener.recv().await {
                    Ok(notification) => notification,
                    Err(error) => {
                        tracing::warn!(%error, "announcements: listener failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let Ok(announcement) = serde_json::from_str::<Announcement>(notification.payload())
                else {
                    tracing::warn!(
                        payload = notification.payload(),
                        "announcements: unreadable"
                    );
                    continue;
                };
                let from_schema = announcement.schema.as_deref().unwrap_or("public");
                if announcement.replica == me || from_schema != &*schema {
                    continue;
                }
                match sender.try_send(announcement.summary) {
                    Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                    // Nobody reads any more: the engine is gone.
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        });
        Ok(Some(receiver))
    }

    async fn leave(&self) -> Result<(), StoreError> {
        sqlx::query(LEAVE)
            .bind(self.replica.id.as_uuid())
            .execute(&self.pool)
            .await
            .map_err(|error| self.error("leaving the replicas", error))?;
        Ok(())
    }
}
