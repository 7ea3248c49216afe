//! The publisher: an [`EventHandler`] that sends every event of a batch to
//! JetStream and then awaits every acknowledgement, so a subscription's
//! checkpoint moves only past events JetStream has stored.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::{self, message::PublishMessage};
use async_trait::async_trait;
use cqrs_es::DomainEvent;
use metrics::{counter, Counter};
use seckill_app::subscription::{BatchFailure, EventHandler, HandlerError};
use seckill_app::PositionedEvent;

use crate::error::NatsError;
use crate::stream::{ensure_stream, StreamSettings};
use crate::subject::{
    message_id, EVENT_TYPE_HEADER, EVENT_VERSION_HEADER, POSITION_HEADER, PROMOTION_HEADER,
    SEQUENCE_HEADER, TRACEPARENT_HEADER,
};

/// How many of a batch JetStream stored, and how many it had already.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// Messages stored now.
    pub stored: usize,
    /// Messages JetStream answered as duplicates: a copy with the same id
    /// was stored within the duplicate window. Counted as published.
    pub duplicates: usize,
}

impl Published {
    /// Messages acknowledged, stored or duplicate.
    pub fn acked(&self) -> usize {
        self.stored + self.duplicates
    }
}

/// A batch published in part: the first `acked.acked()` events are in the
/// stream, the next one is not.
#[derive(Debug)]
pub struct PublishFailure {
    /// What JetStream acknowledged at the front of the batch.
    pub acked: Published,
    /// Why the next event was not.
    pub error: NatsError,
}

/// Publishes SecKill events to a JetStream stream.
///
/// Each event goes to `<prefix>.promotion.<promotion id>.<event type>`
/// with `Nats-Msg-Id = <promotion id>:<sequence>`, the `Seckill-*` headers
/// and the event's stored JSON as payload. Run it as a durable subscription
/// (`seckill.subscription(name).run(publisher)`): the first batch creates or
/// updates the stream to its settings.
pub struct Publisher {
    jetstream: jetstream::Context,
    settings: StreamSettings,
    /// Set once the stream matched the settings; cleared when JetStream says
    /// the stream is gone. An atomic: the runner hands one batch at a time,
    /// and ensuring twice would be harmless anyway.
    ensured: AtomicBool,
    stored: Counter,
    duplicates: Counter,
}

impl Publisher {
    /// How long an acknowledgement is awaited unless told otherwise.
    pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);

    /// A publisher to the stream `settings` describe, over `client`.
    pub fn new(client: async_nats::Client, settings: StreamSettings) -> Result<Self, NatsError> {
        settings.validate()?;
        let labels = [("stream", settings.name.clone())];
        metrics::describe_counter!(
            "seckill_nats_published_total",
            "Events JetStream stored from this process."
        );
        metrics::describe_counter!(
            "seckill_nats_duplicates_total",
            "Events JetStream answered as duplicates (already stored within its duplicate window)."
        );
        Ok(Self {
            jetstream: jetstream::ContextBuilder::new()
                .timeout(Self::DEFAULT_ACK_TIMEOUT)
                .build(client),
            settings,
            ensured: AtomicBool::new(false),
            stored: counter!("seckill_nats_published_total", &labels),
            duplicates: counter!("seckill_nats_duplicates_total", &labels),
        })
    }

    /// How long a send or an acknowledgement may take before the batch fails
    /// (and is retried); default 5 s.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.jetstream.set_timeout(timeout);
        self
    }

    /// Its stream's settings.
    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    /// The JetStream context it publishes through.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Creates or updates the stream to the settings now.
    pub async fn ensure_stream(&self) -> Result<jetstream::stream::Info, NatsError> {
        let info = ensure_stream(&self.jetstream, &self.settings).await?;
        self.ensured.store(true, Ordering::Relaxed);
        Ok(info)
    }

    /// Publishes `events` in order: sends them all, then awaits every
    /// acknowledgement. A duplicate acknowledgement counts as published.
    pub async fn publish(&self, events: &[PositionedEvent]) -> Result<Published, PublishFailure> {
        if !self.ensured.load(Ordering::Relaxed) {
            self.ensure_stream().await.map_err(|error| PublishFailure {
                acked: Published::default(),
                error,
            })?;
        }
        // Pipelined: the messages go out back to back on one connection,
        // which keeps their order, and the acknowledgements come back while
        // the later ones are sent.
        let mut pending = Vec::with_capacity(events.len());
        let mut send_error = None;
        for event in events {
            match self.send(event).await {
                Ok(sent) => pending.push(sent),
                Err(error) => {
                    send_error = Some(error);
                    break;
                }
            }
        }
        let mut acked = Published::default();
        for (subject, id, ack) in pending {
            match ack.await {
                Ok(ack) if ack.duplicate => acked.duplicates += 1,
                Ok(_) => acked.stored += 1,
                Err(source) => {
                    self.count(acked);
                    return Err(self.failed(
                        acked,
                        NatsError::Publish {
                            subject,
                            message_id: id,
                            source,
                        },
                    ));
                }
            }
        }
        self.count(acked);
        match send_error {
            None => Ok(acked),
            Some(error) => Err(self.failed(acked, error)),
        }
    }

    /// Sends one event; answers its subject, id and the acknowledgement to await.
    async fn send(
        &self,
        event: &PositionedEvent,
    ) -> Result<(String, String, PublishAckFuture), NatsError> {
        let subject = self.settings.subjects.of(event);
        let id = message_id(event);
        let payload = serde_json::to_vec(&event.event).map_err(|source| NatsError::Encode {
            position: event.position,
            source,
        })?;
        let message = PublishMessage::build()
            .payload(payload.into())
            .message_id(&id)
            // JetStream refuses it if another stream took the subject.
            .expected_stream(&self.settings.name)
            .header(POSITION_HEADER, event.position.to_string().as_str())
            .header(SEQUENCE_HEADER, event.sequence.to_string().as_str())
            .header(PROMOTION_HEADER, event.promotion_id.to_string().as_str())
            .header(EVENT_TYPE_HEADER, event.event.event_type().as_str())
            .header(EVENT_VERSION_HEADER, event.event.event_version().as_str());
        // The trace of the command that caused it, for a consumer to continue.
        let message = match &event.traceparent {
            Some(traceparent) => message.header(TRACEPARENT_HEADER, traceparent.as_str()),
            None => message,
        };
        match self.jetstream.send_publish(subject.clone(), message).await {
            Ok(ack) => Ok((subject, id, ack)),
            Err(source) => Err(NatsError::Publish {
                subject,
                message_id: id,
                source,
            }),
        }
    }

    fn failed(&self, acked: Published, error: NatsError) -> PublishFailure {
        if let NatsError::Publish { source, .. } = &error {
            if source.kind() == PublishErrorKind::StreamNotFound {
                // Deleted behind our back: the retry creates it again.
                self.ensured.store(false, Ordering::Relaxed);
            }
        }
        PublishFailure { acked, error }
    }

    fn count(&self, published: Published) {
        self.stored.increment(published.stored as u64);
        self.duplicates.increment(published.duplicates as u64);
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl EventHandler for Publisher {
    async fn handle(&self, event: &PositionedEvent) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(event))
            .await
            .map_err(|failure| failure.error)
    }

    async fn handle_batch(&self, events: &[PositionedEvent]) -> Result<(), BatchFailure> {
        self.publish(events)
            .await
            .map(|_| ())
            .map_err(|failure| BatchFailure {
                handled: failure.acked.acked(),
                error: Box::new(failure.error),
            })
    }
}
