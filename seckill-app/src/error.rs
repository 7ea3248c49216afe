//! Errors: `StoreError` is what a storage port reports; `SecKillError` is the
//! one enum callers of the application service match on.

use std::sync::Arc;
use std::time::Duration;

use seckill_domain::{PromotionError, PromotionId};
use thiserror::Error;

use crate::ownership::Replica;

/// Any error a storage adapter wants to carry along. Shared, so one failed
/// commit can report the same cause to every caller in its batch.
pub type SourceError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// What a storage port (event store or projection store) reports.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    /// Someone else appended to the promotion's stream first. Nothing was
    /// written; reload and decide again.
    #[error("promotion {promotion_id}: the stream moved past event #{expected}; another writer got there first")]
    Conflict {
        /// The promotion whose stream moved.
        promotion_id: PromotionId,
        /// The last sequence number the writer expected.
        expected: u64,
    },
    /// A stored event cannot be read back.
    #[error("corrupt event #{sequence} of {aggregate_type} {aggregate_id}: {reason}")]
    CorruptEvent {
        /// The aggregate type column of the row.
        aggregate_type: String,
        /// The aggregate id column of the row.
        aggregate_id: String,
        /// The row's sequence number.
        sequence: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The store did not answer in time. A write may or may not have happened.
    #[error("the store did not answer within {0:?}")]
    Timeout(Duration),
    /// The store cannot be reached: the call was not carried out.
    #[error("the store is unavailable: {0}")]
    Unavailable(#[source] SourceError),
    /// The connection broke while the call was under way (a reset, a
    /// crashed server): a write may or may not have happened.
    #[error("the store stopped answering mid-call: {0}")]
    Interrupted(#[source] SourceError),
    /// Any other failure of the store.
    #[error("the store failed: {0}")]
    Backend(#[source] SourceError),
}

impl StoreError {
    /// A failure of the store, from any error or message.
    pub fn backend(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self::Backend(Arc::from(error.into()))
    }

    /// The store cannot be reached, from any error or message.
    pub fn unavailable(
        error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::Unavailable(Arc::from(error.into()))
    }

    /// The connection broke mid-call, from any error or message.
    pub fn interrupted(
        error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::Interrupted(Arc::from(error.into()))
    }

    /// Whether a write that failed this way may have happened all the same
    /// ([`Timeout`](Self::Timeout), [`Interrupted`](Self::Interrupted)).
    pub const fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::Interrupted(_))
    }

    /// Whether this is an optimistic-concurrency conflict.
    pub const fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

/// Why the application service could not do what was asked.
#[derive(Debug, Error)]
pub enum SecKillError {
    /// The promotion's rules refused the command. Nothing was recorded.
    #[error(transparent)]
    Rejected(PromotionError),
    /// There is no promotion with this id.
    #[error("promotion {0} does not exist")]
    NotFound(PromotionId),
    /// The promotion's queue is full. Nothing was recorded; retry shortly.
    #[error("promotion {0} is taking more grabs than it can queue; retry shortly")]
    Overloaded(PromotionId),
    /// The service is shutting down and takes no new commands.
    #[error("the service is shutting down")]
    ShuttingDown,
    /// Another replica owns the promotion and this service was given no way
    /// to forward to it (see [`Forward`](crate::Forward)): send the command
    /// to `owner`. Nothing was recorded here.
    #[error("promotion {promotion_id} is owned by replica {} at {}", owner.id, owner.address)]
    NotOwner {
        /// The promotion.
        promotion_id: PromotionId,
        /// The replica that owns it now.
        owner: Replica,
    },
    /// The store failed and nothing was recorded. Retrying is safe.
    #[error("storage failure: {0}")]
    Storage(#[from] StoreError),
    /// The commit was sent, but the store's answer never came (a timeout, a
    /// broken connection), and the command may have been recorded or not.
    /// Retrying is safe: a grab that was recorded is answered
    /// `Rejected(AlreadyGrabbed(coupon))` with the customer's coupon.
    #[error("promotion {promotion_id}: the outcome is unknown, the command may have been recorded ({source}); retrying is safe")]
    OutcomeUnknown {
        /// The promotion.
        promotion_id: PromotionId,
        /// Why the store's answer was lost.
        source: StoreError,
    },
}

impl SecKillError {
    pub(crate) fn from_domain(promotion_id: PromotionId, error: PromotionError) -> Self {
        match error {
            PromotionError::UnknownPromotion => Self::NotFound(promotion_id),
            other => Self::Rejected(other),
        }
    }
}
