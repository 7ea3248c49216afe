//! How one batch of a subscription is handled and its checkpoint stored.
//!
//! [`AtLeastOnce`] calls an [`EventHandler`] and then stores the checkpoint:
//! a crash in between hands the batch again. A backend can offer a stronger
//! [`Delivery`]; the PostgreSQL adapter's runs the handler inside the
//! transaction that moves the checkpoint, so its effects happen once.

use std::sync::Arc;

use async_trait::async_trait;

use super::store::{SubscriptionLease, SubscriptionStore};
use super::{EventHandler, HandlerError};
use crate::error::StoreError;
use crate::port::PositionedEvent;

/// Hands a batch to a handler and stores the checkpoint after it.
#[async_trait]
pub trait Delivery: Send + Sync + 'static {
    /// Handles `events`, in order, and stores the checkpoint after the last
    /// one handled, under `lease`. `Ok` means all of them are handled and
    /// the checkpoint is at the last one's position.
    async fn deliver(
        &self,
        lease: &SubscriptionLease,
        events: &[PositionedEvent],
    ) -> Result<(), DeliveryFailure>;
}

/// Why a batch was not delivered in full.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeliveryFailure {
    /// The handler failed on `events[failed_at]`. The checkpoint stands after
    /// the first `checkpointed` events (`checkpointed <= failed_at`; less
    /// when a transaction rolled the handled ones back too).
    Handler {
        /// Events at the front whose checkpoint is stored.
        checkpointed: usize,
        /// The event the handler failed on.
        failed_at: usize,
        /// The handler's error.
        error: HandlerError,
    },
    /// The lease is no longer current: another consumer took over. Nothing
    /// more may be stored under it.
    Fenced,
    /// The store failed; the checkpoint may not have moved.
    Store(StoreError),
}

/// At-least-once delivery: the handler first, the checkpoint after.
pub struct AtLeastOnce<H, S: ?Sized = dyn SubscriptionStore> {
    handler: H,
    store: Arc<S>,
}

impl<H: EventHandler, S: SubscriptionStore + ?Sized> AtLeastOnce<H, S> {
    /// Delivers to `handler`, keeping checkpoints in `store`.
    pub fn new(handler: H, store: Arc<S>) -> Self {
        Self { handler, store }
    }

    async fn checkpoint(
        &self,
        lease: &SubscriptionLease,
        position: u64,
    ) -> Result<(), DeliveryFailure> {
        match self.store.save_checkpoint(lease, position).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(DeliveryFailure::Fenced),
            Err(error) => Err(DeliveryFailure::Store(error)),
        }
    }
}

#[async_trait]
impl<H: EventHandler, S: SubscriptionStore + ?Sized> Delivery for AtLeastOnce<H, S> {
    async fn deliver(
        &self,
        lease: &SubscriptionLease,
        events: &[PositionedEvent],
    ) -> Result<(), DeliveryFailure> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        match self.handler.handle_batch(events).await {
            Ok(()) => self.checkpoint(lease, last.position).await,
            Err(failure) => {
                // A handler that claims more than it was given is trusted
                // only as far as the batch goes.
                let handled = failure.handled.min(events.len() - 1);
                if handled > 0 {
                    self.checkpoint(lease, events[handled - 1].position).await?;
                }
                Err(DeliveryFailure::Handler {
                    checkpointed: handled,
                    failed_at: handled,
                    error: failure.error,
                })
            }
        }
    }
}
