//! What can go wrong between SecKill and JetStream, one variant per thing a
//! caller can act on. Each message carries its cause, because the
//! subscription runner logs and records errors by their `Display` alone.

use async_nats::jetstream::context::{CreateStreamError, PublishError};
use seckill_app::SecKillError;

/// An error of the NATS adapter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// A subject prefix is one or more dot-separated tokens of visible ASCII,
    /// without the wildcards `*` and `>`.
    #[error("invalid subject prefix {0:?}: use dot-separated tokens of visible ASCII, without `*` or `>`")]
    InvalidPrefix(String),
    /// A stream name is 1 to 255 visible ASCII characters, without `.`,
    /// `*`, `>`, `/` or `\`.
    #[error("invalid stream name {0:?}: use 1 to 255 visible ASCII characters, without `.`, `*`, `>`, `/` or `\\`")]
    InvalidStreamName(String),
    /// A stream setting JetStream would refuse.
    #[error("stream setting {field} {rule}")]
    OutOfRange {
        /// The setting.
        field: &'static str,
        /// What it must be.
        rule: &'static str,
    },
    /// No NATS server answered at the URL.
    #[error("connecting to NATS at {url}: {source}")]
    Connect {
        /// Where.
        url: String,
        /// Why not.
        #[source]
        source: async_nats::ConnectError,
    },
    /// JetStream refused to create or update the stream (for example a
    /// change of storage, or subjects another stream already takes).
    #[error("creating or updating stream {stream}: {source}")]
    Stream {
        /// The stream.
        stream: String,
        /// JetStream's answer.
        #[source]
        source: CreateStreamError,
    },
    /// An event that does not serialize; a bug, never retried into success.
    #[error("encoding the event at position {position} as JSON: {source}")]
    Encode {
        /// Its global position.
        position: u64,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The message could not be sent, or JetStream did not acknowledge it
    /// (no stream takes the subject, a timeout, a broken connection).
    #[error("publishing {message_id} to {subject}: {source}")]
    Publish {
        /// Its subject.
        subject: String,
        /// Its `Nats-Msg-Id`.
        message_id: String,
        /// Why.
        #[source]
        source: PublishError,
    },
    /// Reading the events to republish failed.
    #[error("reading the events after position {after}: {source}")]
    Read {
        /// The position read after.
        after: u64,
        /// Why.
        #[source]
        source: SecKillError,
    },
}
