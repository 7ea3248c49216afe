//! `seckill-server`'s NATS JetStream side: the `--nats-*` flags, the
//! publisher run as a durable subscription next to the web server, and the
//! operator's `publish --from N`.

use super::*;

#[derive(Debug, ClapArgs)]
pub(crate) struct PublishArgs {
    /// The first global position to publish (`1`: every event).
    #[arg(long)]
    pub(crate) from: u64,

    /// PostgreSQL URL of the store to read.
    #[arg(long, env = "SECKILL_DATABASE_URL")]
    pub(crate) database_url: String,

    #[command(flatten)]
    pub(crate) pg: PgArgs,

    /// How long one database call may take before it fails.
    #[arg(long, env = "SECKILL_DB_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub(crate) db_timeout: Duration,

    /// NATS server URL.
    #[arg(long, env = "SECKILL_NATS_URL")]
    pub(crate) nats_url: String,

    #[command(flatten)]
    pub(crate) nats: NatsArgs,
}

/// The JetStream stream the events go to; created or updated to these
/// settings before the first event is published.
#[derive(Debug, ClapArgs)]
pub(crate) struct NatsArgs {
    /// JetStream stream name. The publisher's subscription is named after it
    /// (`nats-publisher.<stream>`), so each stream has its own checkpoint.
    #[arg(long, env = "SECKILL_NATS_STREAM", default_value = StreamSettings::DEFAULT_NAME)]
    pub(crate) nats_stream: String,

    /// Subjects are `<prefix>.promotion.<promotion id>.<event type>`.
    #[arg(long, env = "SECKILL_NATS_SUBJECT_PREFIX", default_value = Subjects::DEFAULT_PREFIX)]
    pub(crate) nats_subject_prefix: String,

    /// How long the stream keeps a message, e.g. `7days` or `12h`.
    #[arg(long, env = "SECKILL_NATS_MAX_AGE", default_value = "7days", value_parser = parse_duration)]
    pub(crate) nats_max_age: Duration,

    /// How long JetStream remembers a message id and drops copies of it.
    #[arg(long, env = "SECKILL_NATS_DUPLICATE_WINDOW", default_value = "2min", value_parser = parse_duration)]
    pub(crate) nats_duplicate_window: Duration,
}

impl NatsArgs {
    pub(crate) fn settings(&self) -> anyhow::Result<StreamSettings> {
        let subjects = Subjects::new(self.nats_subject_prefix.clone())?;
        let settings = StreamSettings {
            max_age: Some(self.nats_max_age),
            duplicate_window: self.nats_duplicate_window,
            ..StreamSettings::new(self.nats_stream.clone(), subjects)
        };
        settings.validate()?;
        Ok(settings)
    }

    pub(crate) fn subscription_name(&self) -> String {
        format!("nats-publisher.{}", self.nats_stream)
    }
}

/// Runs the JetStream publisher as the durable subscription
/// `nats-publisher.<stream>`; its lag shows on `/metrics` as
/// `seckill_subscription_lag{subscription="nats-publisher.<stream>"}`.
pub(crate) async fn start_publishing(
    seckill: &SecKill,
    url: &str,
    nats: &NatsArgs,
) -> anyhow::Result<(
    seckill_app::subscription::Subscription,
    seckill_nats::async_nats::Client,
)> {
    let settings = nats.settings().context("the NATS stream flags")?;
    // In the background: the sale does not wait for NATS; the subscription
    // retries, and its lag grows, until NATS answers.
    let client = seckill_nats::connect_in_background(url, "seckill-server")
        .await
        .context("connecting to NATS")?;
    let publisher = Publisher::new(client.clone(), settings)?;
    let name = nats.subscription_name();
    let subscription = seckill
        .subscription(name.as_str())
        .run(publisher)
        .context("starting the NATS publisher")?;
    tracing::info!(subscription = %name, stream = %nats.nats_stream, prefix = %nats.nats_subject_prefix, "publishing events to NATS JetStream");
    Ok((subscription, client))
}

/// `seckill-server publish --from N`: the events from position N to the
/// newest, published again.
pub(crate) async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    init_logging("warn", LogFormat::Human)?;
    let settings = args.nats.settings().context("the NATS stream flags")?;
    let options = pg_options(2, args.db_timeout, &args.pg);
    let store = PgStore::connect_with(&args.database_url, options)
        .await
        .context("connecting to PostgreSQL and migrating it")?;
    let seckill = SecKill::builder(Arc::new(store))
        .build()
        .context("checking the engine settings")?;
    let client = seckill_nats::connect(&args.nats_url, "seckill-server publish").await?;
    let publisher = Publisher::new(client.clone(), settings)?;
    let bar = indicatif::ProgressBar::new_spinner();
    let done = seckill_nats::republish(&seckill, &publisher, args.from, 512, |done| {
        bar.set_message(format!(
            "{} events published, up to position {}",
            done.events, done.last_position
        ));
    })
    .await;
    bar.finish_and_clear();
    client
        .flush()
        .await
        .context("flushing the NATS connection")?;
    let done = done?;
    println!(
        "published {} events from position {} (last {}): {} stored, {} already in the stream",
        done.events,
        args.from,
        done.last_position,
        done.published.stored,
        done.published.duplicates
    );
    Ok(())
}
