//! Errors: `StoreError` is what a storage port reports; `SecKillError` is the
//! one enum callers of the application service match on.
//!
//! Both are `#[non_exhaustive]`, so a new failure is not a breaking change;
//! a caller that must handle everything branches on
//! [`SecKillError::is_retryable`] and [`SecKillError::code`], which every
//! variant, old or new, answers.

use std::sync::Arc;
use std::time::Duration;

use seckill_domain::{PromotionError, PromotionId};
use thiserror::Error;

use crate::cluster::Replica;

/// What a storage port (event store or projection store) reports.
///
/// The causes it carries are any error, shared (an `Arc`), so one failed
/// commit can report the same cause to every caller in its batch.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
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
    Unavailable(#[source] Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// The connection broke while the call was under way (a reset, a
    /// crashed server): a write may or may not have happened.
    #[error("the store stopped answering mid-call: {0}")]
    Interrupted(#[source] Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// Any other failure of the store.
    #[error("the store failed: {0}")]
    Backend(#[source] Arc<dyn std::error::Error + Send + Sync + 'static>),
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

    /// Whether the same call may succeed if made again: every failure but
    /// [`CorruptEvent`](Self::CorruptEvent), which the next read finds again.
    pub const fn is_retryable(&self) -> bool {
        !matches!(self, Self::CorruptEvent { .. })
    }
}

/// Why the application service could not do what was asked.
///
/// Each variant has a stable [`code`](Self::code), the slug of the problem
/// type the HTTP server answers it with (`docs/api.md`), and says whether
/// [retrying](Self::is_retryable) may help. `Clone`, so one failure can be
/// handed to several waiters.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum SecKillError {
    /// The promotion's rules refused the command. Nothing was recorded.
    /// Never [`PromotionError::UnknownPromotion`]: that is
    /// [`NotFound`](Self::NotFound).
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
    /// to forward to it (see [`Forward`](crate::cluster::Forward)), or forwarding gave
    /// up while the owner kept changing: send the command to `owner`.
    /// Nothing was recorded here.
    #[error("promotion {promotion_id} is owned by replica {} at {}", owner.id, owner.address)]
    NotOwner {
        /// The promotion.
        promotion_id: PromotionId,
        /// The replica that owns it now.
        owner: Replica,
    },
    /// Another writer kept appending to the promotion's stream, and the
    /// engine's [`max_conflict_retries`](crate::EngineConfig::max_conflict_retries)
    /// ran out (two processes selling one promotion without an
    /// [`Ownership`](crate::cluster::Ownership)). Nothing was recorded; retrying is
    /// safe.
    #[error("promotion {promotion_id}: another writer kept appending to its stream; nothing was recorded, retry shortly")]
    Conflict {
        /// The promotion.
        promotion_id: PromotionId,
    },
    /// The store failed and nothing was recorded. Retrying is safe.
    #[error("storage failure: {0}")]
    Storage(StoreError),
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

/// A store's conflict is [`SecKillError::Conflict`]; anything else is
/// [`SecKillError::Storage`].
impl From<StoreError> for SecKillError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { promotion_id, .. } => Self::Conflict { promotion_id },
            other => Self::Storage(other),
        }
    }
}

impl SecKillError {
    /// Every [`code`](Self::code) there is, for a caller that maps them (the
    /// HTTP server's table is checked against this list).
    pub const CODES: &'static [&'static str] = &[
        "unknown-promotion",
        "already-exists",
        "already-grabbed",
        "not-started",
        "ended",
        "sold-out",
        "already-started",
        "already-finished",
        "not-yet-expired",
        "invalid-schedule",
        "overloaded",
        "shutting-down",
        "not-owner",
        "conflict",
        "storage-unavailable",
        "outcome-unknown",
    ];

    /// The refusal of `error` by promotion `promotion_id`'s rules: the one
    /// way a [`PromotionError`] becomes a `SecKillError`, so an unknown
    /// promotion is always [`NotFound`](Self::NotFound).
    pub fn rejected(promotion_id: PromotionId, error: PromotionError) -> Self {
        match error {
            PromotionError::UnknownPromotion => Self::NotFound(promotion_id),
            other => Self::Rejected(other),
        }
    }

    /// A stable, machine-readable name of what went wrong: the slug of the
    /// problem type the HTTP API answers with (`/problems/{code}`, listed in
    /// `docs/api.md`), one of [`CODES`](Self::CODES). A rejection has its
    /// rule's code (`sold-out`, `not-started`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Rejected(rejection) => rejection.code(),
            Self::NotFound(_) => "unknown-promotion",
            Self::Overloaded(_) => "overloaded",
            Self::ShuttingDown => "shutting-down",
            Self::NotOwner { .. } => "not-owner",
            Self::Conflict { .. } => "conflict",
            Self::Storage(_) => "storage-unavailable",
            Self::OutcomeUnknown { .. } => "outcome-unknown",
        }
    }

    /// Whether sending the same command again, unchanged, may succeed: the
    /// failure was the service's or the store's, not the command's, and
    /// retrying is safe (a grab that was recorded after all is answered with
    /// its coupon). `false` for a rejection and for an unknown promotion,
    /// which the same command meets again (a grab refused `not-started`
    /// succeeds only once the sale opens, as a new command with a new time),
    /// and for a corrupt stored event.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Rejected(_) | Self::NotFound(_) => false,
            Self::Overloaded(_)
            | Self::ShuttingDown
            | Self::NotOwner { .. }
            | Self::Conflict { .. }
            | Self::OutcomeUnknown { .. } => true,
            Self::Storage(error) => error.is_retryable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{TimeZone, Utc};
    use seckill_domain::ScheduleError;

    use super::*;
    use crate::cluster::ReplicaId;

    fn id() -> PromotionId {
        PromotionId::from_uuid(uuid::Uuid::from_u128(7))
    }

    /// One of every variant (and of every rejection), with whether a retry
    /// may succeed.
    fn every_error() -> Vec<(SecKillError, bool)> {
        let at = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let rejections = [
            PromotionError::AlreadyExists,
            PromotionError::NotStarted { publish_time: at },
            PromotionError::Ended { finished_at: at },
            PromotionError::SoldOut {
                number_of_coupons: 1,
            },
            PromotionError::AlreadyStarted { publish_time: at },
            PromotionError::AlreadyFinished,
            PromotionError::NotYetExpired { finish_time: at },
            PromotionError::Schedule(ScheduleError::FinishInPast {
                finish_time: at,
                at,
            }),
        ];
        let mut all: Vec<_> = rejections
            .into_iter()
            .map(|rejection| (SecKillError::Rejected(rejection), false))
            .collect();
        let owner = Replica {
            id: ReplicaId::random(),
            address: "http://127.0.0.1:1".to_owned(),
        };
        all.extend([
            (SecKillError::NotFound(id()), false),
            (SecKillError::Overloaded(id()), true),
            (SecKillError::ShuttingDown, true),
            (
                SecKillError::NotOwner {
                    promotion_id: id(),
                    owner,
                },
                true,
            ),
            (SecKillError::Conflict { promotion_id: id() }, true),
            (SecKillError::Storage(StoreError::unavailable("down")), true),
            (
                SecKillError::Storage(StoreError::CorruptEvent {
                    aggregate_type: "Promotion".to_owned(),
                    aggregate_id: id().to_string(),
                    sequence: 1,
                    reason: "not JSON".to_owned(),
                }),
                false,
            ),
            (
                SecKillError::OutcomeUnknown {
                    promotion_id: id(),
                    source: StoreError::Timeout(Duration::from_secs(1)),
                },
                true,
            ),
        ]);
        all
    }

    #[test]
    fn every_code_is_listed_and_only_the_listed_codes_are_produced() {
        let produced: std::collections::HashSet<_> = every_error()
            .iter()
            .map(|(error, _)| error.code())
            .collect();
        // The rejection of `AlreadyGrabbed` needs a coupon; its code is the
        // domain's, checked by the domain's tests.
        let mut listed: std::collections::HashSet<_> =
            SecKillError::CODES.iter().copied().collect();
        listed.remove("already-grabbed");
        assert_eq!(produced, listed);
    }

    #[test]
    fn retryable_means_the_failure_was_not_the_commands() {
        for (error, retryable) in every_error() {
            assert_eq!(error.is_retryable(), retryable, "{error:?}");
        }
    }

    #[test]
    fn an_unknown_promotion_is_not_found_never_a_rejection() {
        let error = SecKillError::rejected(id(), PromotionError::UnknownPromotion);
        assert!(matches!(error, SecKillError::NotFound(found) if found == id()));
        assert_eq!(error.code(), "unknown-promotion");
        let sold_out = PromotionError::SoldOut {
            number_of_coupons: 3,
        };
        assert!(matches!(
            SecKillError::rejected(id(), sold_out.clone()),
            SecKillError::Rejected(rejection) if rejection == sold_out
        ));
    }

    #[test]
    fn a_stores_conflict_is_its_own_variant_and_other_failures_are_storage() {
        let conflict = StoreError::Conflict {
            promotion_id: id(),
            expected: 4,
        };
        assert!(matches!(
            SecKillError::from(conflict),
            SecKillError::Conflict { promotion_id } if promotion_id == id()
        ));
        assert!(matches!(
            SecKillError::from(StoreError::backend("disk full")),
            SecKillError::Storage(StoreError::Backend(_))
        ));
    }

    #[test]
    fn an_error_clones_with_its_cause() {
        let error = SecKillError::Storage(StoreError::unavailable("connection refused"));
        let copy = error.clone();
        assert_eq!(copy.to_string(), error.to_string());
        assert!(copy.to_string().contains("connection refused"), "{copy}");
    }
}
