//! The original's event service, done right: a consumer of the JetStream
//! stream `seckill-server --nats-url` publishes to, keeping its own table of
//! granted coupons in its own PostgreSQL schema.
//!
//! ```text
//! cargo run --example coupon_consumer -- \
//!     --database-url postgres://postgres@127.0.0.1:5432/postgres \
//!     --nats-url nats://127.0.0.1:4222 --stream SECKILL --durable coupon-consumer
//! ```
//!
//! A durable pull consumer: its place in the stream is kept by JetStream,
//! so a restart resumes where the last acknowledged message was. Each batch
//! is written in one transaction and acknowledged only after it committed;
//! a crash in between hands the batch again, and the rows are keyed by the
//! message id (`Nats-Msg-Id` = `<promotion>:<sequence>`), so a second
//! delivery inserts nothing (`ON CONFLICT DO NOTHING`). The table ends equal
//! to the store's coupons, whatever was killed when.

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use seckill_domain::PromotionEvent;
use seckill_nats::async_nats::header::NATS_MESSAGE_ID;
use seckill_nats::async_nats::jetstream::{self, consumer::pull, AckKind, Message};
use seckill_nats::Subjects;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tracing_subscriber::EnvFilter;

/// Keeps a table of granted coupons from the SecKill JetStream stream.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// PostgreSQL URL of the consumer's own database (it may be the store's:
    /// the table lives in its own schema).
    #[arg(long, env = "COUPON_CONSUMER_DATABASE_URL")]
    database_url: String,

    /// The schema the consumer creates and keeps its `coupons` table in.
    #[arg(long, env = "COUPON_CONSUMER_SCHEMA", default_value = "coupon_consumer", value_parser = parse_schema)]
    schema: String,

    /// NATS server URL.
    #[arg(
        long,
        env = "COUPON_CONSUMER_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,

    /// The stream `seckill-server --nats-stream` publishes to.
    #[arg(long, env = "COUPON_CONSUMER_STREAM", default_value = "SECKILL")]
    stream: String,

    /// The subject prefix `seckill-server --nats-subject-prefix` uses.
    #[arg(
        long,
        env = "COUPON_CONSUMER_SUBJECT_PREFIX",
        default_value = "seckill"
    )]
    subject_prefix: String,

    /// The durable consumer's name: JetStream keeps its position.
    #[arg(
        long,
        env = "COUPON_CONSUMER_DURABLE",
        default_value = "coupon-consumer"
    )]
    durable: String,

    /// Which events to receive: only grabs, or all (the others are
    /// acknowledged and skipped).
    #[arg(long, value_enum, default_value_t = Filter::Coupons)]
    filter: Filter,

    /// Most messages written in one transaction.
    #[arg(long, default_value_t = 256,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    batch: usize,

    /// How long JetStream waits for an acknowledgement before it hands a
    /// message again (to this consumer after a restart), e.g. `30s`.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    ack_wait: Duration,

    /// Log filter, in `tracing` env-filter syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Filter {
    /// `<prefix>.promotion.*.CouponGrabbed`
    Coupons,
    /// `<prefix>.promotion.>`
    All,
}

/// A PostgreSQL identifier we can put in SQL unquoted.
fn parse_schema(raw: &str) -> Result<String, String> {
    let mut bytes = raw.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if first_ok && rest_ok && raw.len() <= 63 {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "`{raw}` is not a schema name: use lower-case letters, digits and `_`, at most 63"
        ))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_new(&args.log).context("parsing --log / RUST_LOG")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&args.database_url)
        .await
        .context("connecting to PostgreSQL")?;
    create_table(&pool, &args.schema).await?;
    let subjects = Subjects::new(args.subject_prefix.clone())?;
    let client = seckill_nats::connect(&args.nats_url, "coupon-consumer").await?;
    let stream = jetstream::new(client)
        .get_stream(&args.stream)
        .await
        .with_context(|| format!("opening stream {}", args.stream))?;
    let filter_subject = match args.filter {
        Filter::Coupons => subjects.of_type("CouponGrabbed"),
        Filter::All => subjects.all(),
    };
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            &args.durable,
            pull::Config {
                durable_name: Some(args.durable.clone()),
                filter_subject: filter_subject.clone(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: args.ack_wait,
                ..pull::Config::default()
            },
        )
        .await
        .with_context(|| format!("creating the durable consumer {}", args.durable))?;
    let messages = consumer
        .messages()
        .await
        .context("pulling from the durable consumer")?;
    tracing::info!(stream = %args.stream, durable = %args.durable, filter = %filter_subject, schema = %args.schema, "consuming");
    tokio::select! {
        result = consume(messages, &pool, &args) => result,
        () = shutdown() => {
            tracing::info!("stopping; unacknowledged messages come again");
            Ok(())
        }
    }
}

async fn create_table(pool: &PgPool, schema: &str) -> anyhow::Result<()> {
    // The schema name is checked by `parse_schema`, so it can be spliced.
    for statement in [
        format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {schema}.coupons (
                 message_id      text PRIMARY KEY,
                 promotion_id    uuid NOT NULL,
                 number          integer NOT NULL,
                 customer_id     text NOT NULL,
                 discount        double precision NOT NULL,
                 grabbed_at      timestamptz NOT NULL,
                 position        bigint NOT NULL,
                 stream_sequence bigint NOT NULL,
                 received_at     timestamptz NOT NULL DEFAULT now()
             )"
        ),
    ] {
        sqlx::query(&statement)
            .execute(pool)
            .await
            .with_context(|| format!("creating {schema}.coupons"))?;
    }
    Ok(())
}

/// Takes batches as they come: write, commit, then acknowledge.
async fn consume(messages: pull::Stream, pool: &PgPool, args: &Args) -> anyhow::Result<()> {
    // Up to `batch` messages that are already there, without waiting for a
    // full batch: a quiet stream is written message by message.
    let mut batches = messages.ready_chunks(args.batch);
    let insert = format!(
        "INSERT INTO {}.coupons (message_id, promotion_id, number, customer_id, discount, \
             grabbed_at, position, stream_sequence) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (message_id) DO NOTHING",
        args.schema
    );
    let mut retry = Duration::from_millis(100);
    while let Some(batch) = batches.next().await {
        let mut messages = Vec::with_capacity(batch.len());
        for message in batch {
            match message {
                Ok(message) => messages.push(message),
                // Missed heartbeats, a reconnect: the stream goes on.
                Err(error) => tracing::warn!(%error, "pull consumer"),
            }
        }
        match write(pool, &insert, &messages).await {
            Ok(written) => {
                retry = Duration::from_millis(100);
                // Only now: every row of the batch is committed.
                for (message, outcome) in messages.iter().zip(written) {
                    let kind = match outcome {
                        Outcome::Written | Outcome::Skipped => AckKind::Ack,
                        Outcome::Poison => AckKind::Term,
                    };
                    if let Err(error) = message.ack_with(kind).await {
                        // It comes again after --ack-wait, and inserts nothing.
                        tracing::warn!(%error, "acknowledgement not sent");
                    }
                }
                tracing::debug!(messages = messages.len(), "batch written");
            }
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "batch not written; handing it back");
                for message in &messages {
                    let _ = message.ack_with(AckKind::Nak(Some(retry))).await;
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(10));
            }
        }
    }
    anyhow::bail!("the JetStream consumer ended")
}

/// What became of one message.
enum Outcome {
    /// A coupon, inserted (or already there).
    Written,
    /// Another event type: nothing to write.
    Skipped,
    /// Undecodable: acknowledged as terminal, so it is not handed again.
    Poison,
}

/// Writes a batch in one transaction.
async fn write(pool: &PgPool, insert: &str, messages: &[Message]) -> anyhow::Result<Vec<Outcome>> {
    let mut tx = pool.begin().await.context("beginning a transaction")?;
    let mut outcomes = Vec::with_capacity(messages.len());
    for message in messages {
        let Some(id) = message
            .headers
            .as_ref()
            .and_then(|h| h.get(NATS_MESSAGE_ID))
        else {
            tracing::error!(subject = %message.subject, "a message without Nats-Msg-Id; dropped");
            outcomes.push(Outcome::Poison);
            continue;
        };
        let event: PromotionEvent = match serde_json::from_slice(&message.payload) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(%error, message_id = %id, "undecodable event; dropped");
                outcomes.push(Outcome::Poison);
                continue;
            }
        };
        let PromotionEvent::CouponGrabbed { coupon, .. } = event else {
            outcomes.push(Outcome::Skipped);
            continue;
        };
        let stream_sequence = message.info().map(|info| info.stream_sequence).unwrap_or(0);
        let position = message
            .headers
            .as_ref()
            .and_then(|h| h.get(seckill_nats::POSITION_HEADER))
            .and_then(|v| v.as_str().parse::<i64>().ok())
            .unwrap_or(0);
        sqlx::query(insert)
            .bind(id.as_str())
            .bind(coupon.promotion_id.as_uuid())
            .bind(i32::try_from(coupon.number).context("a coupon number above i32")?)
            .bind(coupon.customer_id.as_str())
            .bind(coupon.discount.get())
            .bind(coupon.grabbed_at)
            .bind(position)
            .bind(i64::try_from(stream_sequence).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("inserting coupon {id}"))?;
        outcomes.push(Outcome::Written);
    }
    tx.commit().await.context("committing the batch")?;
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["coupon_consumer", "_x", "a1"] {
            assert_eq!(parse_schema(good).as_deref(), Ok(good));
        }
        for bad in ["", "1a", "Coupons", "a-b", "a;drop", &"a".repeat(64)] {
            assert!(parse_schema(bad).is_err(), "{bad:?}");
        }
    }
}

/// Completes on Ctrl-C or SIGTERM (what container runtimes send).
async fn shutdown() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
}
