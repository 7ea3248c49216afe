//! Keeping the pool on a server that takes writes. After a failover the
//! old primary comes back as a standby, and a load balancer that does not
//! cut sessions leaves pooled connections on it: every write there fails
//! with SQLSTATE 25006 while reads still work, so the pool would keep them.
//!
//! - A new connection to a server that takes no writes is refused
//!   (`after_connect`): the pool retries until its acquire timeout, by which
//!   time the load balancer routes to the new primary.
//! - Once any call meets a read-only server, every checkout checks its
//!   connection for a while (`before_acquire`) and the pool drops those on
//!   a server that takes no writes. Checking always would cost a round trip
//!   per checkout.
//! - The readiness ping checks writability, and says why it failed.
//!
//! The hooks are on pools this crate builds (`PgStore::connect_with`); a
//! pool of your own gets the classification (25006 is `Unavailable`) and the
//! ping, not the hooks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;
use sqlx::PgConnection;

const WRITABLE: &str = include_str!("../sql/writable.sql");

/// How long after a read-only answer every checkout checks its connection:
/// long enough for a failover to settle, short enough not to tax the pool.
const SUSPECT_FOR: Duration = Duration::from_secs(30);

/// How long a refused connection explains a failed ping.
const REFUSAL_EXPLAINS: Duration = Duration::from_secs(10);

/// Why a server takes no writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReadOnly {
    #[error("the server takes no writes: it is a standby (in recovery), as an old primary is after a failover")]
    InRecovery,
    #[error("the server takes no writes: its transactions are read-only (default_transaction_read_only)")]
    ReadOnlyTransactions,
}

/// What the pool's hooks share with the store.
#[derive(Debug)]
pub(crate) struct Writable {
    base: Instant,
    /// Milliseconds after `base` until which checkouts check their
    /// connection; 0 for never. Relaxed: a hint, ordered with nothing.
    suspect_until_ms: AtomicU64,
    /// The last connection refused, and when.
    refused: Mutex<Option<(Instant, ReadOnly)>>,
}

impl Writable {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            suspect_until_ms: AtomicU64::new(0),
            refused: Mutex::new(None),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A call met a server that takes no writes: check connections at
    /// checkout for a while.
    pub(crate) fn suspect(&self) {
        let until = self.now_ms().saturating_add(SUSPECT_FOR.as_millis() as u64);
        self.suspect_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    fn is_suspect(&self) -> bool {
        self.now_ms() < self.suspect_until_ms.load(Ordering::Relaxed)
    }

    fn refuse(&self, why: ReadOnly) {
        self.suspect();
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), why));
    }

    /// Why the pool refused a connection lately, if it did.
    pub(crate) fn recent_refusal(&self) -> Option<ReadOnly> {
        let refused = *self.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused
            .filter(|(at, _)| at.elapsed() < REFUSAL_EXPLAINS)
            .map(|(_, why)| why)
    }

    /// `options` with the hooks that keep the pool on a writable server.
    pub(crate) fn hooks(self: &Arc<Self>, options: PgPoolOptions) -> PgPoolOptions {
        let on_connect = Arc::clone(self);
        let on_checkout = Arc::clone(self);
        options
            .after_connect(move |connection, _| {
                let writable = Arc::clone(&on_connect);
                Box::pin(async move {
                    match check(connection).await? {
                        None => Ok(()),
                        Some(why) => {
                            writable.refuse(why);
                            Err(sqlx::Error::Configuration(Box::new(why)))
                        }
                    }
                })
            })
            .before_acquire(move |connection, _| {
                let writable = Arc::clone(&on_checkout);
                Box::pin(async move {
                    if !writable.is_suspect() {
                        return Ok(true);
                    }
                    Ok(check(connection).await?.is_none())
                })
            })
    }
}

/// Why `connection`'s server takes no writes; `None` if it takes them.
pub(crate) async fn check(connection: &mut PgConnection) -> Result<Option<ReadOnly>, sqlx::Error> {
    let (in_recovery, read_only): (bool, bool) =
        sqlx::query_as(WRITABLE).fetch_one(connection).await?;
    Ok(if in_recovery {
        Some(ReadOnly::InRecovery)
    } else if read_only {
        Some(ReadOnly::ReadOnlyTransactions)
    } else {
        None
    })
}
