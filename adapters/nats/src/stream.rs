//! The JetStream stream the events go to, and its settings: which subjects
//! it takes, how long it keeps them, and how long it remembers message ids
//! to drop copies.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::error::NatsError;
use crate::subject::Subjects;

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Storage {
    /// On disk: survives a restart of the NATS server (the default).
    #[default]
    File,
    /// In memory: faster, gone when the NATS server restarts.
    Memory,
}

/// How a stream of SecKill events is configured. [`ensure_stream`] makes
/// JetStream's stream match it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// The stream's name (default `SECKILL`).
    pub name: String,
    /// Its subjects: it takes `<prefix>.promotion.>`.
    pub subjects: Subjects,
    /// How long a message is kept; `None` keeps it until a count or size
    /// limit pushes it out (default 7 days).
    pub max_age: Option<Duration>,
    /// The most messages kept, the oldest discarded first; `None`: no limit.
    pub max_messages: Option<u64>,
    /// The most bytes kept, the oldest discarded first; `None`: no limit.
    pub max_bytes: Option<u64>,
    /// How long JetStream remembers a message id and drops another message
    /// with it (default 2 min). A copy published later than this after the
    /// first is stored again; consumers stay idempotent by the id.
    pub duplicate_window: Duration,
    /// Disk or memory (default disk). JetStream cannot change it on an
    /// existing stream.
    pub storage: Storage,
}

impl StreamSettings {
    /// The name used unless one is given.
    pub const DEFAULT_NAME: &'static str = "SECKILL";
    /// The duplicate window used unless one is given.
    pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
    /// The age limit used unless one is given.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

    /// The defaults for a stream `name` taking `subjects`.
    pub fn new(name: impl Into<String>, subjects: Subjects) -> Self {
        Self {
            name: name.into(),
            subjects,
            max_age: Some(Self::DEFAULT_MAX_AGE),
            max_messages: None,
            max_bytes: None,
            duplicate_window: Self::DEFAULT_DUPLICATE_WINDOW,
            storage: Storage::File,
        }
    }

    /// Checks what JetStream would refuse, with an error that names it.
    pub fn validate(&self) -> Result<(), NatsError> {
        let name_ok = (1..=255).contains(&self.name.len())
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b".*>/\\".contains(&b));
        if !name_ok {
            return Err(NatsError::InvalidStreamName(self.name.clone()));
        }
        let out_of_range = |field, rule| Err(NatsError::OutOfRange { field, rule });
        if self.duplicate_window < Duration::from_millis(100) {
            return out_of_range("duplicate_window", "must be at least 100 ms");
        }
        if let Some(max_age) = self.max_age {
            // JetStream's own rule: it cannot remember an id longer than
            // it keeps the message.
            if max_age < self.duplicate_window {
                return out_of_range("max_age", "must be at least the duplicate window");
            }
        }
        if self.max_messages == Some(0) || self.max_bytes == Some(0) {
            return out_of_range("max_messages/max_bytes", "must be at least 1 when set");
        }
        Ok(())
    }

    /// The JetStream configuration these settings stand for.
    pub fn to_config(&self) -> stream::Config {
        // JetStream reads -1 (counts) and 0 (age) as "no limit".
        let limit = |value: Option<u64>| value.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
        stream::Config {
            name: self.name.clone(),
            description: Some("SecKill promotion events, published by seckill-nats".to_owned()),
            subjects: vec![self.subjects.all()],
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_age: self.max_age.unwrap_or(Duration::ZERO),
            max_messages: limit(self.max_messages),
            max_bytes: limit(self.max_bytes),
            duplicate_window: self.duplicate_window,
            storage: match self.storage {
                Storage::File => stream::StorageType::File,
                Storage::Memory => stream::StorageType::Memory,
            },
            ..stream::Config::default()
        }
    }
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self::new(Self::DEFAULT_NAME, Subjects::default())
    }
}

/// Creates the stream `settings` describe, or updates it to them when it
/// exists; answers its state after.
///
/// Updating keeps the messages stored. JetStream refuses some changes (the
/// storage kind; subjects another stream takes): those come back as
/// [`NatsError::Stream`].
pub async fn ensure_stream(
    jetstream: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<stream::Info, NatsError> {
    settings.validate()?;
    let info = jetstream
        .create_or_update_stream(settings.to_config())
        .await
        .map_err(|source| NatsError::Stream {
            stream: settings.name.clone(),
            source,
        })?;
    tracing::info!(
        stream = %settings.name,
        subjects = %settings.subjects.all(),
        messages = info.state.messages,
        "JetStream stream ready"
    );
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keep_a_week_and_drop_copies_for_two_minutes() {
        let settings = StreamSettings::default();
        settings.validate().expect("the defaults are valid");
        let config = settings.to_config();
        assert_eq!(config.name, "SECKILL");
        assert_eq!(config.subjects, vec!["seckill.promotion.>".to_owned()]);
        assert_eq!(config.duplicate_window, Duration::from_secs(120));
        assert_eq!(config.max_age, Duration::from_secs(7 * 24 * 3600));
        assert_eq!((config.max_messages, config.max_bytes), (-1, -1));
    }

    #[test]
    fn settings_jetstream_refuses_are_refused_first() {
        let base = StreamSettings::default();
        for name in ["", "A.B", "A*", "A>", "A/B", "A B"] {
            let settings = StreamSettings {
                name: name.to_owned(),
                ..base.clone()
            };
            assert!(settings.validate().is_err(), "{name:?} was accepted");
        }
        let short_age = StreamSettings {
            max_age: Some(Duration::from_secs(60)),
            ..base.clone()
        };
        assert!(short_age.validate().is_err());
        let no_room = StreamSettings {
            max_messages: Some(0),
            ..base
        };
        assert!(no_room.validate().is_err());
    }
}
