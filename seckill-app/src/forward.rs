//! The forwarding port: how a replica hands commands to the promotion's
//! owner, and the wire form of the commands and answers that cross.
//!
//! The engine batches what goes to one owner (one call of
//! [`Forward::forward`] carries every command queued for that owner, up to a
//! limit), so a transport only moves batches: the web server's is one HTTP
//! request on a keep-alive pool. The owner runs a batch with
//! [`SecKill::execute_forwarded`](crate::SecKill::execute_forwarded), which
//! never forwards again, so a command makes at most one hop.

use std::time::Duration;

use async_trait::async_trait;
use seckill_domain::{PromotionCommand, PromotionError, PromotionEvent, PromotionId};
use serde::{Deserialize, Serialize};

use crate::error::{SecKillError, StoreError};
use crate::ownership::Replica;

/// One command for a promotion another replica owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardedCommand {
    /// The promotion.
    pub promotion_id: PromotionId,
    /// The command, with the time the first replica read for it.
    pub command: PromotionCommand,
}

/// The owner's answer to one [`ForwardedCommand`], as it crosses the wire.
/// [`into_result`](Self::into_result) turns it back into what the owner's
/// `SecKill` answered, so the caller gets the owner's answer unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
#[non_exhaustive]
pub enum ForwardedReply {
    /// Done: these events are durable.
    Recorded {
        /// What the command recorded (nothing for a no-op).
        events: Vec<PromotionEvent>,
    },
    /// The promotion's rules refused it.
    Rejected {
        /// Why.
        error: PromotionError,
    },
    /// The promotion does not exist.
    NotFound,
    /// The owner's queue for the promotion is full.
    Overloaded,
    /// The owner is shutting down.
    ShuttingDown,
    /// The replica asked is not the owner (any more): ask again.
    NotOwner,
    /// The owner's store did not answer within this many milliseconds; the
    /// command may or may not have been recorded.
    Timeout {
        /// The limit that passed.
        millis: u64,
    },
    /// The owner's commit was sent but its answer was lost (not a
    /// timeout): the command may or may not have been recorded.
    OutcomeUnknown {
        /// What went wrong, for the logs.
        reason: String,
    },
    /// The owner's store failed or could not be reached; nothing was
    /// recorded.
    Unavailable {
        /// What went wrong, for the logs.
        reason: String,
    },
}

impl ForwardedReply {
    /// The owner's answer for the wire.
    pub fn from_result(result: Result<Vec<PromotionEvent>, SecKillError>) -> Self {
        match result {
            Ok(events) => Self::Recorded { events },
            Err(SecKillError::Rejected(error)) => Self::Rejected { error },
            Err(SecKillError::NotFound(_)) => Self::NotFound,
            Err(SecKillError::Overloaded(_)) => Self::Overloaded,
            Err(SecKillError::ShuttingDown) => Self::ShuttingDown,
            Err(SecKillError::NotOwner { .. }) => Self::NotOwner,
            Err(SecKillError::OutcomeUnknown {
                source: StoreError::Timeout(limit),
                ..
            }) => Self::Timeout {
                millis: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
            },
            Err(SecKillError::OutcomeUnknown { source, .. }) => Self::OutcomeUnknown {
                reason: source.to_string(),
            },
            Err(SecKillError::Storage(error)) => Self::Unavailable {
                reason: error.to_string(),
            },
        }
    }

    /// What the owner answered, as this replica's `SecKill` answers it.
    /// `NotOwner` is returned as [`SecKillError::NotOwner`] naming `owner`,
    /// the replica that said so.
    pub fn into_result(
        self,
        promotion_id: PromotionId,
        owner: &Replica,
    ) -> Result<Vec<PromotionEvent>, SecKillError> {
        match self {
            Self::Recorded { events } => Ok(events),
            Self::Rejected { error } => Err(SecKillError::Rejected(error)),
            Self::NotFound => Err(SecKillError::NotFound(promotion_id)),
            Self::Overloaded => Err(SecKillError::Overloaded(promotion_id)),
            Self::ShuttingDown => Err(SecKillError::ShuttingDown),
            Self::NotOwner => Err(SecKillError::NotOwner {
                promotion_id,
                owner: owner.clone(),
            }),
            Self::Timeout { millis } => Err(SecKillError::OutcomeUnknown {
                promotion_id,
                source: StoreError::Timeout(Duration::from_millis(millis)),
            }),
            Self::OutcomeUnknown { reason } => Err(SecKillError::OutcomeUnknown {
                promotion_id,
                source: StoreError::interrupted(reason),
            }),
            Self::Unavailable { reason } => {
                Err(SecKillError::Storage(StoreError::unavailable(reason)))
            }
        }
    }
}

/// Carries batches of commands to their owner and brings the answers back.
///
/// Implementations move bytes and nothing else: the engine decides what to
/// send where, batches it, bounds it in time (its `store_timeout`), and
/// treats any error as "the owner did not answer" and forgets the route to
/// that owner. The callers get [`SecKillError::Storage`] when the error says
/// the batch never reached the owner ([`StoreError::Unavailable`]: refused,
/// not connected), and [`SecKillError::OutcomeUnknown`] otherwise (a
/// timeout, a connection broken after sending): the owner may have run it.
#[async_trait]
pub trait Forward: Send + Sync + 'static {
    /// Sends `commands` to `owner` and returns its answers, one per command,
    /// in order.
    async fn forward(
        &self,
        owner: &Replica,
        commands: Vec<ForwardedCommand>,
    ) -> Result<Vec<ForwardedReply>, StoreError>;
}
