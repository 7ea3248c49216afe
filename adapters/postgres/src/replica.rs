//! [`PgReplica`]: queries answered from a PostgreSQL standby, so reads scale
//! out while the primary takes the grabs, within a bound on how stale they
//! may be.
//!
//! Only the queries go there: coupons by customer, a promotion's summary,
//! the unfinished promotions. Everything that decides (the engine's loads,
//! its appends), the global feed and the subscriptions stay on the primary:
//! a gap-free read of the feed needs the primary's snapshot (ADR 0011).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use seckill_app::{ProjectionStore, PromotionSummary, StoreError};
use seckill_domain::{Coupon, CustomerId, PromotionId};
use sqlx::postgres::PgConnectOptions;

use crate::error::{store_error, ConnectError};
use crate::options::PgOptions;
use crate::store::PgStore;

const REPLICA_LAG: &str = include_str!("../sql/replica_lag.sql");

/// The default bound on a replica's lag: past it, queries go to the primary.
pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(1);

/// How long one lag reading is trusted: a query per reading would double
/// every query's round trips.
const LAG_FRESH_FOR: Duration = Duration::from_millis(100);

/// The projections read from a standby while it is within `max_lag` of its
/// primary, and from the primary's store otherwise (or when the standby
/// fails). Writes (projection repairs) always go to the primary.
///
/// A reader may see a state up to `max_lag` older than the primary's, and
/// two reads may see the primary's newer state, then the standby's older
/// one. Hand it to [`SecKillBuilder::queries`](seckill_app::SecKillBuilder::queries).
#[derive(Debug)]
pub struct PgReplica {
    /// The standby's pool, with the primary's settings.
    standby: PgStore,
    primary: PgStore,
    max_lag: Duration,
    statement_timeout: Option<Duration>,
    base: Instant,
    /// When the lag was last read (milliseconds after `base`, plus one; 0
    /// for never), and whether the standby was within bounds then. Relaxed:
    /// a cache; a stale reading only costs one more check.
    checked_ms: AtomicU64,
    fresh: AtomicBool,
}

impl PgReplica {
    /// Connects to the standby at `url` with `options` (the same schema as
    /// the primary's; nothing is created or migrated there), falling back
    /// to `primary` when the standby is more than `max_lag` behind.
    pub async fn connect_with(
        url: &str,
        options: PgOptions,
        primary: PgStore,
        max_lag: Duration,
    ) -> Result<Self, ConnectError> {
        options.validate()?;
        let connect = PgConnectOptions::from_str(url).map_err(ConnectError::Url)?;
        let replica = options
            .pool_options()
            .connect_with(options.apply_to(connect))
            .await
            .map_err(ConnectError::Connect)?;
        Ok(Self {
            standby: PgStore::reading(replica, &primary),
            primary,
            max_lag,
            statement_timeout: options.statement_timeout,
            base: Instant::now(),
            checked_ms: AtomicU64::new(0),
            fresh: AtomicBool::new(false),
        })
    }

    /// How far the standby is behind its primary now: zero when it has
    /// replayed all it received.
    pub async fn lag(&self) -> Result<Duration, StoreError> {
        let seconds: f64 = sqlx::query_scalar(REPLICA_LAG)
            .fetch_one(self.standby.pool())
            .await
            .map_err(|e| store_error("reading the replica's lag", e, self.statement_timeout))?;
        Ok(Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX))
    }

    /// Whether queries may go to the standby now.
    async fn use_standby(&self) -> bool {
        let now = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let checked = self.checked_ms.load(Ordering::Relaxed);
        if checked != 0 && now - checked < LAG_FRESH_FOR.as_millis() as u64 {
            return self.fresh.load(Ordering::Relaxed);
        }
        let fresh = matches!(self.lag().await, Ok(lag) if lag <= self.max_lag);
        self.fresh.store(fresh, Ordering::Relaxed);
        self.checked_ms.store(now, Ordering::Relaxed);
        fresh
    }
}

#[async_trait]
impl ProjectionStore for PgReplica {
    async fn coupons_of(&self, customer: &CustomerId) -> Result<Vec<Coupon>, StoreError> {
        if self.use_standby().await {
            if let Ok(coupons) = self.standby.coupons_of(customer).await {
                return Ok(coupons);
            }
        }
        self.primary.coupons_of(customer).await
    }

    async fn promotion(
        &self,
        promotion_id: PromotionId,
    ) -> Result<Option<PromotionSummary>, StoreError> {
        if self.use_standby().await {
            if let Ok(summary) = self.standby.promotion(promotion_id).await {
                return Ok(summary);
            }
        }
        self.primary.promotion(promotion_id).await
    }

    async fn unfinished_promotions(&self) -> Result<Vec<PromotionSummary>, StoreError> {
        if self.use_standby().await {
            if let Ok(summaries) = self.standby.unfinished_promotions().await {
                return Ok(summaries);
            }
        }
        self.primary.unfinished_promotions().await
    }

    async fn replace_projection(
        &self,
        summary: &PromotionSummary,
        coupons: &[Coupon],
    ) -> Result<(), StoreError> {
        self.primary.replace_projection(summary, coupons).await
    }

    async fn replace_projection_if_current(
        &self,
        summary: &PromotionSummary,
        coupons: &[Coupon],
    ) -> Result<bool, StoreError> {
        self.primary
            .replace_projection_if_current(summary, coupons)
            .await
    }
}
