//! `PgOptions`: the pool's size, the store's timeouts and the schema SecKill
//! lives in, with defaults that suit one service process, the rules they must
//! keep ([`OptionsError`]), and how they shape a pool of sqlx's.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use thiserror::Error;

/// The schema SecKill's tables live in unless [`PgOptions::schema`] says
/// otherwise: not `public`, so an application's own tables and its own sqlx
/// migrations there never meet ours.
pub const DEFAULT_SCHEMA: &str = "seckill";

/// Connection settings for [`PgStore::connect_with`](crate::PgStore::connect_with)
/// and [`PgStore::from_pool_with`](crate::PgStore::from_pool_with).
///
/// Start from [`PgOptions::default`] and change what you need with the
/// `with_*` setters (the struct is `#[non_exhaustive]`, so it grows without
/// breaking you). Nothing is checked until the options are used: then a
/// setting that would hang or misbehave is [`OptionsError`].
///
/// ```
/// use std::time::Duration;
/// use seckill_postgres::PgOptions;
///
/// let options = PgOptions::default()
///     .with_max_connections(5)
///     .with_statement_timeout(Some(Duration::from_secs(2)))
///     .with_schema("shop_seckill");
/// assert_eq!(options.acquire_timeout, Duration::from_secs(5));
/// assert_eq!(options.validate(), Ok(()));
/// ```
///
/// # Timeouts, and the engine's `store_timeout`
///
/// Two clocks bound a store call. The grab engine's
/// `EngineConfig::store_timeout` (default 5 s) is the caller's: past it the
/// engine stops waiting and answers `StoreError::Timeout`, an outcome it
/// treats as unknown (the append may still commit; the engine reads the
/// stream to learn whether it did). [`statement_timeout`](Self::statement_timeout)
/// is the server's: past it PostgreSQL cancels the statement, so it certainly
/// did not commit, and its connection is free again. Keep
/// `statement_timeout <= store_timeout` (both default to 5 s): then a stuck
/// statement is cut off by the server by the time the engine gives up, and
/// does not go on holding a connection and locks behind an answer nobody
/// waits for. `acquire_timeout` counts separately, before the statement
/// starts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct PgOptions {
    /// Most connections the pool opens. The grab engine appends for each hot
    /// promotion from one task, so a few connections serve many promotions.
    /// At least 1. Default: 10.
    pub max_connections: u32,
    /// Connections the pool keeps open while idle. At most
    /// `max_connections`. Default: 0.
    pub min_connections: u32,
    /// How long a call waits for a free connection before it fails with
    /// `StoreError::Unavailable`. More than zero. Default: 5 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub acquire_timeout: Duration,
    /// The server-side limit on any one statement, so a stuck query frees its
    /// connection; exceeding it is `StoreError::Timeout` with this limit.
    /// `None` keeps the server's setting (and such a cancellation is then
    /// reported as a backend failure: the store does not know the limit).
    /// At least 1 ms when set. Default: 5 s. See the section on timeouts above.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub statement_timeout: Option<Duration>,
    /// How long [`ping`](seckill_app::EventStore::ping) waits for a connection
    /// and its answer to whether the server takes writes.
    /// More than zero. Default: 1 s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub ping_timeout: Duration,
    /// The `application_name` the server shows in `pg_stat_activity`.
    /// Default: `seckill`.
    pub application_name: String,
    /// The schema holding SecKill's tables, functions and its own
    /// `_sqlx_migrations`; created if missing. Every pooled connection puts it
    /// alone on its `search_path`. Lower-case ASCII letters, digits and `_`,
    /// starting with a letter or `_`, at most 63 bytes, not `pg_*`.
    /// `public` keeps the layout of SecKill before this option (and shares
    /// `public._sqlx_migrations` with whoever else migrates there).
    /// Default: [`DEFAULT_SCHEMA`], `seckill`.
    pub schema: String,
    /// PostgreSQL's `backend_flush_after` for the store's connections, in
    /// kB: after writing that much of the tables out of its buffers, a
    /// connection asks the kernel to write it to disk. PostgreSQL leaves
    /// this off by default, and on a sale that outgrows `shared_buffers` the
    /// page cache then holds hundreds of megabytes until the kernel flushes
    /// them all at once; the disk is busy and every commit's WAL flush waits
    /// (the soak in `docs/benchmarks.md` measures the tail). `None` keeps the server's
    /// setting (and 0, PostgreSQL's own default, turns the flushing off;
    /// a config file, which cannot say `None`, says 0). At most 2,048
    /// (PostgreSQL's limit). Default: 256.
    pub backend_flush_after_kb: Option<u32>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(5)),
            ping_timeout: Duration::from_secs(1),
            application_name: "seckill".to_owned(),
            schema: DEFAULT_SCHEMA.to_owned(),
            backend_flush_after_kb: Some(256),
        }
    }
}

/// A [`PgOptions`] setting the store cannot run with. Each rule stops a hang
/// or a silent failure: a pool of no connections or a zero acquire timeout
/// fails every call, a zero `statement_timeout` would switch the limit off,
/// and a schema name is spliced into DDL and `search_path`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// `field` breaks `rule`.
    #[error("PgOptions::{field} must be {rule}")]
    OutOfRange {
        /// The setting, as named in [`PgOptions`].
        field: &'static str,
        /// What it must be.
        rule: &'static str,
    },
    /// The schema name is not one SecKill accepts.
    #[error("PgOptions::schema {name:?} is not a schema name SecKill accepts: {reason}")]
    Schema {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
}

impl PgOptions {
    /// Sets [`max_connections`](Self::max_connections).
    #[must_use]
    pub fn with_max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections;
        self
    }

    /// Sets [`min_connections`](Self::min_connections).
    #[must_use]
    pub fn with_min_connections(mut self, connections: u32) -> Self {
        self.min_connections = connections;
        self
    }

    /// Sets [`acquire_timeout`](Self::acquire_timeout).
    #[must_use]
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets [`statement_timeout`](Self::statement_timeout); `None` keeps the
    /// server's.
    #[must_use]
    pub fn with_statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// Sets [`ping_timeout`](Self::ping_timeout).
    #[must_use]
    pub fn with_ping_timeout(mut self, timeout: Duration) -> Self {
        self.ping_timeout = timeout;
        self
    }

    /// Sets [`application_name`](Self::application_name).
    #[must_use]
    pub fn with_application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// Sets [`schema`](Self::schema); checked when the options are used, or
    /// by [`validate`](Self::validate).
    #[must_use]
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Sets [`backend_flush_after_kb`](Self::backend_flush_after_kb); `None`
    /// keeps the server's setting.
    #[must_use]
    pub fn with_backend_flush_after_kb(mut self, kb: Option<u32>) -> Self {
        self.backend_flush_after_kb = kb;
        self
    }

    /// Checks every setting against its rule; the first one broken is the
    /// error. [`PgStore`](crate::PgStore)'s constructors call it first.
    pub fn validate(&self) -> Result<(), OptionsError> {
        let one_ms = Duration::from_millis(1);
        let rules = [
            (self.max_connections >= 1, "max_connections", "at least 1"),
            (
                self.min_connections <= self.max_connections,
                "min_connections",
                "at most max_connections",
            ),
            (
                !self.acquire_timeout.is_zero(),
                "acquire_timeout",
                "more than zero",
            ),
            (
                self.statement_timeout.is_none_or(|limit| limit >= one_ms),
                "statement_timeout",
                "at least 1 ms (PostgreSQL's 0 means no limit: say None to keep the server's)",
            ),
            (
                !self.ping_timeout.is_zero(),
                "ping_timeout",
                "more than zero",
            ),
            (
                self.backend_flush_after_kb.is_none_or(|kb| kb <= 2_048),
                "backend_flush_after_kb",
                "at most 2,048 (PostgreSQL's limit), or None to keep the server's",
            ),
        ];
        if let Some((_, field, rule)) = rules.into_iter().find(|(kept, _, _)| !kept) {
            return Err(OptionsError::OutOfRange { field, rule });
        }
        check_schema_name(&self.schema).map_err(|reason| OptionsError::Schema {
            name: self.schema.clone(),
            reason,
        })
    }

    /// `connect` with what these options set on every connection: the
    /// application name, the `statement_timeout` and `backend_flush_after`
    /// (when set) and a `search_path` of [`schema`](Self::schema) alone. Build the pool for
    /// [`PgStore::from_pool_with`](crate::PgStore::from_pool_with) from it
    /// (with [`pool_options`](Self::pool_options)), or your own pool when it
    /// should see SecKill's tables unqualified.
    ///
    /// Startup parameters, so they hold on every pooled connection without a
    /// round trip per checkout. Call on validated options: the schema name
    /// goes into the startup packet as it is.
    pub fn apply_to(&self, connect: PgConnectOptions) -> PgConnectOptions {
        let mut connect = connect.application_name(&self.application_name);
        if let Some(limit) = self.statement_timeout {
            connect = connect.options([("statement_timeout", format!("{}ms", limit.as_millis()))]);
        }
        if let Some(kb) = self.backend_flush_after_kb {
            connect = connect.options([("backend_flush_after", format!("{kb}kB"))]);
        }
        // Our schema alone: every statement resolves to our objects, never to
        // a same-named table or function of the application's in `public`.
        connect.options([("search_path", self.schema.as_str())])
    }

    /// A pool builder with these options' size and acquire timeout.
    pub fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(self.min_connections)
            .acquire_timeout(self.acquire_timeout)
    }
}

/// Why `name` is not a schema name we accept, if it is not.
///
/// Stricter than PostgreSQL: only names that need no quoting and that
/// PostgreSQL does not fold, so the name reads the same in our DDL (always
/// quoted), in `search_path` and in a user's unquoted SQL, and no input can
/// carry SQL.
fn check_schema_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err("it is empty");
    };
    if name.len() > 63 {
        return Err("it is longer than 63 bytes, PostgreSQL's limit");
    }
    if !(first.is_ascii_lowercase() || first == '_') {
        return Err("it must start with a lower-case ASCII letter or `_`");
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err("only lower-case ASCII letters, digits and `_` are allowed");
    }
    if name.starts_with("pg_") || name == "information_schema" {
        return Err("it names a system schema (`pg_*`, `information_schema`)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_name_the_seckill_schema() {
        let options = PgOptions::default();
        assert_eq!(options.validate(), Ok(()));
        assert_eq!(options.schema, "seckill");
    }

    #[test]
    fn every_out_of_range_setting_names_its_field() {
        let cases = [
            (
                PgOptions::default().with_max_connections(0),
                "max_connections",
            ),
            (
                PgOptions::default()
                    .with_max_connections(2)
                    .with_min_connections(3),
                "min_connections",
            ),
            (
                PgOptions::default().with_acquire_timeout(Duration::ZERO),
                "acquire_timeout",
            ),
            (
                PgOptions::default().with_statement_timeout(Some(Duration::ZERO)),
                "statement_timeout",
            ),
            (
                PgOptions::default().with_statement_timeout(Some(Duration::from_micros(999))),
                "statement_timeout",
            ),
            (
                PgOptions::default().with_ping_timeout(Duration::ZERO),
                "ping_timeout",
            ),
            (
                PgOptions::default().with_backend_flush_after_kb(Some(2_049)),
                "backend_flush_after_kb",
            ),
        ];
        for (options, expected) in cases {
            match options.validate() {
                Err(OptionsError::OutOfRange { field, .. }) => assert_eq!(field, expected),
                other => panic!("{expected}: {other:?}"),
            }
        }
        let no_limit = PgOptions::default().with_statement_timeout(None);
        assert_eq!(no_limit.validate(), Ok(()));
    }

    #[test]
    fn schema_names_that_need_quoting_or_carry_sql_are_refused() {
        for bad in [
            "",
            "Seckill",
            "1st",
            "sec-kill",
            "sec kill",
            "seckill; DROP TABLE events",
            "seckill\"",
            "pg_temp",
            "information_schema",
            "é",
            &"s".repeat(64),
        ] {
            let options = PgOptions::default().with_schema(bad);
            assert!(
                matches!(options.validate(), Err(OptionsError::Schema { ref name, .. }) if name == bad),
                "{bad:?} was accepted"
            );
        }
        for good in ["seckill", "public", "_private", "shop_2", &"s".repeat(63)] {
            assert_eq!(PgOptions::default().with_schema(good).validate(), Ok(()));
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn options_read_from_a_configuration_with_humantime_durations() {
        let options: PgOptions = serde_json::from_str(
            r#"{"max_connections": 4, "acquire_timeout": "500ms", "statement_timeout": "2s", "schema": "shop"}"#,
        )
        .unwrap();
        let expected = PgOptions::default()
            .with_max_connections(4)
            .with_acquire_timeout(Duration::from_millis(500))
            .with_statement_timeout(Some(Duration::from_secs(2)))
            .with_schema("shop");
        assert_eq!(options, expected);
        let written = serde_json::to_value(&options).unwrap();
        assert_eq!(written["statement_timeout"], "2s");
        assert_eq!(written["ping_timeout"], "1s");
        let back: PgOptions = serde_json::from_value(written).unwrap();
        assert_eq!(back, expected);

        let no_limit: PgOptions = serde_json::from_str(r#"{"statement_timeout": null}"#).unwrap();
        assert_eq!(no_limit.statement_timeout, None);
        let typo = serde_json::from_str::<PgOptions>(r#"{"max_connection": 4}"#);
        assert!(typo.is_err(), "an unknown field is refused");
    }

    #[test]
    fn the_connect_options_carry_the_schema_and_the_limit() {
        let options = PgOptions::default()
            .with_schema("shop")
            .with_statement_timeout(Some(Duration::from_millis(1500)));
        let connect = options.apply_to(PgConnectOptions::new());
        let startup = connect.get_options().unwrap_or_default();
        assert!(startup.contains("statement_timeout=1500ms"), "{startup}");
        assert!(startup.contains("search_path=shop"), "{startup}");
        assert_eq!(connect.get_application_name(), Some("seckill"));
    }
}
