//! Republishing for operators: every event from a global position up to the
//! head, through the same publisher, read page by page from the store.
//!
//! Copies of events JetStream stored within its duplicate window are
//! dropped there; older ones are stored again, and consumers that are
//! idempotent by `Nats-Msg-Id` ignore them.

use seckill_app::SecKill;

use crate::error::NatsError;
use crate::publisher::{Published, Publisher};

/// What a republish did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Republished {
    /// Events read and published.
    pub events: usize,
    /// Of those, how many JetStream stored, and how many it dropped as
    /// copies of messages it had within its duplicate window.
    pub published: Published,
    /// The last position published; 0 when none was.
    pub last_position: u64,
}

/// A republish that stopped part of the way.
#[derive(Debug, thiserror::Error)]
#[error("republishing stopped after {} events; resume with --from {resume_from}: {error}", done.events)]
pub struct RepublishError {
    /// What was published before it stopped.
    pub done: Republished,
    /// The first position not published: start there again.
    pub resume_from: u64,
    /// Why it stopped.
    #[source]
    pub error: NatsError,
}

/// Publishes every event at position `from` or later, up to the newest,
/// `page` events at a time (at least 1), and calls `progress` after each page.
pub async fn republish(
    seckill: &SecKill,
    publisher: &Publisher,
    from: u64,
    page: usize,
    mut progress: impl FnMut(&Republished),
) -> Result<Republished, RepublishError> {
    let page = page.max(1);
    let mut done = Republished::default();
    // Positions count from 1: "from N" reads after N - 1.
    let mut after = from.saturating_sub(1);
    loop {
        let events = seckill
            .events_after(after, page)
            .await
            .map_err(|source| RepublishError {
                done,
                resume_from: after + 1,
                error: NatsError::Read { after, source },
            })?;
        let Some(last) = events.last() else {
            return Ok(done);
        };
        let last_position = last.position;
        match publisher.publish(&events).await {
            Ok(published) => {
                done.events += events.len();
                done.published.stored += published.stored;
                done.published.duplicates += published.duplicates;
                done.last_position = last_position;
                after = last_position;
                progress(&done);
            }
            Err(failure) => {
                let acked = failure.acked.acked();
                done.events += acked;
                done.published.stored += failure.acked.stored;
                done.published.duplicates += failure.acked.duplicates;
                if acked > 0 {
                    done.last_position = events[acked - 1].position;
                }
                return Err(RepublishError {
                    done,
                    resume_from: events[acked].position,
                    error: failure.error,
                });
            }
        }
    }
}
