//! Durable subscriptions: a named follower of the global event order that
//! survives restarts, crashes and replicas.
//!
//! A subscription hands every event after its checkpoint to a handler, in
//! position order (so in sequence order per promotion), and stores the
//! checkpoint in the backend once the handler is done with it. Delivery is at
//! least once: a crash between the handler and the checkpoint hands the
//! same events again. A [`Delivery`] that writes the checkpoint in the
//! handler's own transaction (the PostgreSQL adapter's `Transactional`)
//! makes the effects exactly once.
//!
//! One name has one active consumer across every process on the store: the
//! runner holds a lease on the name and fences each checkpoint with the
//! lease's epoch; the others stand by and take over when the lease lapses.
//!
//! Start one with [`SecKill::subscription`](crate::SecKill::subscription),
//! and implement [`EventHandler`] for where its events go. A backend author
//! implements [`SubscriptionStore`], the third part of a
//! [`Backend`](crate::Backend).
//!
//! # Layout
//! * `mod.rs`  – what a user writes: [`EventHandler`], [`Start`], errors.
//! * `store`   – the [`SubscriptionStore`] port: leases and checkpoints.
//! * `delivery` – [`Delivery`]: how a batch is handled and checkpointed.
//! * `runner`  – [`SubscriptionBuilder`] and the task that follows the feed,
//!   retries and takes over.
//! * `status`  – the [`Subscription`] handle, its status and lag, and the
//!   metrics the task keeps.

mod delivery;
mod runner;
mod status;
mod store;

use std::panic::AssertUnwindSafe;

use async_trait::async_trait;
use futures::FutureExt;

use crate::port::PositionedEvent;

pub use delivery::{AtLeastOnce, Delivery, DeliveryFailure};
pub use runner::{SubscriptionBuilder, DEFAULT_LEASE};
pub use status::{Subscription, SubscriptionLag, SubscriptionStatus};
pub use store::{SubscriptionLease, SubscriptionStore};

/// What a handler reports when it cannot handle an event. The event is
/// retried with backoff, never skipped.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where a subscription's events go.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Handles one event. An error means "not handled": the same event
    /// comes again after a backoff.
    async fn handle(&self, event: &PositionedEvent) -> Result<(), HandlerError>;

    /// Handles a batch, in order. The default calls [`handle`](Self::handle)
    /// for each; override it to pipeline, e.g. publish every event of the
    /// batch and then wait for all the broker's acknowledgements.
    ///
    /// On an error, [`BatchFailure::handled`] says how many events at the
    /// front of the batch are fully handled: the checkpoint moves past
    /// those, and the next attempt starts at the first one that is not.
    ///
    /// The default also turns a panic in `handle` into an error of that
    /// event, so the events before it keep their checkpoint.
    async fn handle_batch(&self, events: &[PositionedEvent]) -> Result<(), BatchFailure> {
        for (handled, event) in events.iter().enumerate() {
            let outcome = AssertUnwindSafe(self.handle(event)).catch_unwind().await;
            let error = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error,
                Err(panic) => panic_message(panic.as_ref()).into(),
            };
            return Err(BatchFailure { handled, error });
        }
        Ok(())
    }
}

/// A batch that was handled only in part.
#[derive(Debug)]
pub struct BatchFailure {
    /// How many events at the front of the batch were handled.
    pub handled: usize,
    /// Why the next one was not.
    pub error: HandlerError,
}

/// Where a subscription starts the first time its name is seen. Once it has
/// a checkpoint, it resumes there and this is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Start {
    /// Every event ever stored.
    #[default]
    Beginning,
    /// Only events stored after the subscription is first registered.
    Now,
    /// The events after this global position.
    After(u64),
}

/// Why a subscription could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// Names are 1 to 200 visible ASCII characters; they key the checkpoint.
    #[error("invalid subscription name {0:?}: use 1 to 200 visible ASCII characters")]
    InvalidName(String),
    /// A setting it cannot run with.
    #[error("subscription setting {field} {rule}")]
    OutOfRange {
        /// The setting.
        field: &'static str,
        /// What it must be.
        rule: &'static str,
    },
    /// `run` was called outside a Tokio runtime; the subscription is a task.
    #[error("a subscription runs as a task and must be started inside a Tokio runtime")]
    NoRuntime,
}

/// What a caught panic said, as an error message.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    format!("the handler panicked: {text}")
}
