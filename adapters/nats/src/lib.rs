//! NATS JetStream for SecKill: every stored event, published once per
//! copy-free window to a subject per promotion, from a durable subscription.
//!
//! ```no_run
//! # async fn run(seckill: seckill_app::SecKill) -> Result<(), Box<dyn std::error::Error>> {
//! use seckill_nats::{Publisher, StreamSettings, Subjects};
//!
//! let client = seckill_nats::connect("nats://127.0.0.1:4222", "seckill-server").await?;
//! let settings = StreamSettings::new("SECKILL", Subjects::new("seckill")?);
//! let publisher = Publisher::new(client, settings)?;
//! let subscription = seckill
//!     .subscription("nats-publisher.SECKILL")
//!     .run(publisher)?;
//! # drop(subscription);
//! # Ok(())
//! # }
//! ```
//!
//! The subscription hands events in global order; the [`Publisher`] sends a
//! whole batch and then awaits every JetStream acknowledgement, so the
//! checkpoint moves only past stored events. Delivery is at least once: a
//! crash between the acknowledgements and the checkpoint publishes the batch
//! again, and JetStream drops those copies by their `Nats-Msg-Id`
//! (`<promotion id>:<sequence>`) within its duplicate window. See
//! docs/events.md for the subjects, headers and stream settings.
//!
//! # Layout
//! * `subject`   – [`Subjects`]: `<prefix>.promotion.<id>.<event type>`,
//!   the filters consumers use, [`message_id`] and the header names.
//! * `stream`    – [`StreamSettings`] (retention, duplicate window,
//!   storage) and [`ensure_stream`], which creates or updates the stream.
//! * `publisher` – [`Publisher`], the [`EventHandler`](seckill_app::subscription::EventHandler)
//!   that publishes a batch and awaits its acknowledgements.
//! * `republish` – [`republish`]: events from a position to the head again,
//!   for operators.
//! * `error`     – [`NatsError`].
//! * `testing` (feature `testing`) – `NatsFixture`: a stream and subject
//!   prefix of its own per test.

mod error;
mod publisher;
mod republish;
mod stream;
mod subject;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::NatsError;
pub use publisher::{PublishFailure, Published, Publisher};
pub use republish::{republish, RepublishError, Republished};
pub use stream::{ensure_stream, Storage, StreamSettings};
pub use subject::{
    message_id, Subjects, EVENT_TYPE_HEADER, EVENT_VERSION_HEADER, POSITION_HEADER,
    PROMOTION_HEADER, SEQUENCE_HEADER, TRACEPARENT_HEADER,
};

/// The client library, for callers that build their own connection or
/// consume the stream.
pub use async_nats;

/// Connects to the NATS server at `url` (e.g. `nats://127.0.0.1:4222`),
/// naming the connection `name` for the server's monitoring. Fails at once
/// when nothing answers.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, NatsError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .connect(url)
        .await
        .map_err(|source| NatsError::Connect {
            url: url.to_owned(),
            source,
        })
}

/// Like [`connect`], but answers at once and keeps connecting in the
/// background: a server that starts while NATS is down serves anyway, and
/// its publisher retries until NATS answers.
pub async fn connect_in_background(url: &str, name: &str) -> Result<async_nats::Client, NatsError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connect(url)
        .await
        .map_err(|source| NatsError::Connect {
            url: url.to_owned(),
            source,
        })
}
