//! The flags' values that take more than clap's own parsers: durations, the
//! PostgreSQL connection flags every subcommand that opens the store shares,
//! and the pool settings they make.

use std::fmt;
use std::time::Duration;

use clap::Args as ClapArgs;
use seckill_postgres::{PgOptions, DEFAULT_SCHEMA};

/// How the store's PostgreSQL connections are set up, shared by every
/// subcommand that opens the store.
#[derive(Debug, Clone, ClapArgs)]
pub(crate) struct PgArgs {
    /// PostgreSQL schema holding SecKill's tables and its migrations table;
    /// created if missing. `public` keeps the layout from before this flag
    /// (and shares `public._sqlx_migrations` with other migrations there).
    #[arg(long = "pg-schema", env = "SECKILL_PG_SCHEMA", default_value = DEFAULT_SCHEMA,
          value_parser = parse_pg_schema)]
    pub(crate) schema: String,

    /// PostgreSQL's `backend_flush_after` on the store's connections, in kB
    /// (0 to 2048, 0 off), or `server` to keep the server's setting: how much
    /// a connection writes out of `shared_buffers` before it asks the kernel
    /// to write it back, so a long sale's pages do not reach the disk in
    /// one burst (docs/deployment.md).
    #[arg(long = "pg-backend-flush-after", env = "SECKILL_PG_BACKEND_FLUSH_AFTER", value_name = "KB|server",
          default_value_t = FlushAfter(PgOptions::default().backend_flush_after_kb),
          value_parser = parse_flush_after)]
    pub(crate) backend_flush_after: FlushAfter,
}

/// `PgOptions::backend_flush_after_kb`: kilobytes, or `None` for the
/// server's own setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlushAfter(pub(crate) Option<u32>);

impl fmt::Display for FlushAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(kb) => write!(f, "{kb}"),
            None => f.write_str("server"),
        }
    }
}

/// `server`, or kilobytes `PgOptions` accepts.
fn parse_flush_after(raw: &str) -> Result<FlushAfter, String> {
    let kb = match raw.trim() {
        "server" => None,
        number => Some(
            number
                .parse::<u32>()
                .map_err(|_| format!("`{raw}` is neither kilobytes (0 to 2048) nor `server`"))?,
        ),
    };
    PgOptions::default()
        .with_backend_flush_after_kb(kb)
        .validate()
        .map(|()| FlushAfter(kb))
        .map_err(|_| format!("`{raw}` kB is past PostgreSQL's limit: give 0 to 2048, or `server`"))
}

/// A schema name `PgOptions` accepts.
fn parse_pg_schema(raw: &str) -> Result<String, String> {
    PgOptions::default()
        .with_schema(raw)
        .validate()
        .map(|()| raw.to_owned())
        .map_err(|error| error.to_string())
}

/// `500ms`, `2s` or a bare number of seconds.
/// `--draw-key`: a passphrase of at least 32 bytes, derived into the key
/// (`DrawKey::derive`), so any text of that length serves.
pub(crate) fn parse_draw_key(raw: &str) -> Result<seckill_app::draw::DrawKey, String> {
    if raw.len() < 32 {
        return Err(format!(
            "a draw key needs at least 32 bytes, this one has {}",
            raw.len()
        ));
    }
    Ok(seckill_app::draw::DrawKey::derive(raw.as_bytes()))
}

pub(crate) fn parse_duration(raw: &str) -> Result<Duration, String> {
    // Bare seconds, as the flags always took; anything else as humantime
    // reads it (`500ms`, `2s`, `10min`, `1h 30m`).
    let parsed = match raw.trim().parse::<u64>() {
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(raw.trim()).map_err(|error| error.to_string()),
    };
    // Longer than a year is a typo, and near the top of the range a deadline
    // computed from it would overflow.
    let longest = Duration::from_secs(366 * 24 * 60 * 60);
    match parsed {
        Ok(duration) if duration > longest => Err(format!("`{raw}` is longer than 366 days")),
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err(format!(
            "`{raw}` is zero; give a duration like `500ms` or `2s`"
        )),
        Err(error) => Err(format!(
            "`{raw}` is not a duration like `500ms` or `2s`: {error}"
        )),
    }
}

/// Pool settings whose every wait is bounded by `timeout`, with `pg`'s
/// schema and page writeback. The statement timeout equals the engine's
/// `store_timeout` (`--db-timeout` sets both), so the server cuts a stuck
/// statement off as the engine gives up on it (the rule in `PgOptions`'
/// docs: statement_timeout <= store_timeout).
pub(crate) fn pg_options(pool_size: u32, timeout: Duration, pg: &PgArgs) -> PgOptions {
    PgOptions::default()
        .with_max_connections(pool_size)
        .with_acquire_timeout(timeout)
        .with_statement_timeout(Some(timeout))
        .with_ping_timeout(timeout.min(PgOptions::default().ping_timeout))
        .with_schema(pg.schema.as_str())
        .with_backend_flush_after_kb(pg.backend_flush_after.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_timeouts_read_milliseconds_seconds_and_bare_seconds() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("10min"), Ok(Duration::from_secs(600)));
        for bad in [
            "0s",
            "0",
            "",
            "-1s",
            "fast",
            "367days",
            "18446744073709551615s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_writeback_reads_kilobytes_or_the_servers_setting() {
        assert_eq!(parse_flush_after("256"), Ok(FlushAfter(Some(256))));
        assert_eq!(parse_flush_after("0"), Ok(FlushAfter(Some(0))));
        assert_eq!(parse_flush_after("server"), Ok(FlushAfter(None)));
        for bad in ["2049", "-1", "", "fast", "256kB"] {
            assert!(parse_flush_after(bad).is_err(), "{bad}");
        }
        let default = FlushAfter(PgOptions::default().backend_flush_after_kb);
        assert_eq!(parse_flush_after(&default.to_string()), Ok(default));
    }
}
