//! SecKill in its own schema (ADR 0014), against a real PostgreSQL: an
//! application's own sqlx migrations in `public` run beside ours, a database
//! of the old layout (everything in `public`) moves into the schema with its
//! data, and options or pools that would put our tables in the wrong place
//! are typed errors.

mod common;

use std::time::Duration;

use common::Writer;
use seckill_app::{EventStore, ProjectionStore, StoreError};
use seckill_domain::CustomerId;
use seckill_postgres::testing::{options, PgFixture};
use seckill_postgres::{ConnectError, OptionsError, PgStore, MIGRATOR};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Connection, PgPool};

/// An application's own migrations, numbered both ways sqlx allows.
static APP_MIGRATIONS: Migrator = sqlx::migrate!("tests/app_migrations");

/// An application's migration that could live beside the old layout in
/// `public`, on its own: a timestamped version, and no table of our names.
fn loyalty(ignore_missing: bool) -> Migrator {
    let sql = "CREATE TABLE loyalty (customer_id text PRIMARY KEY, points integer NOT NULL)";
    let migration = Migration::new(
        20250101000000,
        "loyalty".into(),
        MigrationType::Simple,
        sql.into(),
        false,
    );
    // The fields are sqlx's (hidden, for `migrate!`); a list of migrations
    // in code has no other constructor in sqlx 0.8.
    Migrator {
        migrations: vec![migration].into(),
        ignore_missing,
        ..Migrator::DEFAULT
    }
}

/// A pool as an application builds it: the server's default `search_path`.
async fn app_pool(fixture: &PgFixture) -> PgPool {
    PgPool::connect(fixture.url()).await.unwrap()
}

/// The tables and functions of `schema`, sorted.
async fn objects_in(pool: &PgPool, schema: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 \
         UNION ALL SELECT proname || '()' FROM pg_proc WHERE pronamespace::regnamespace::text = $1 \
         ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The versions `schema._sqlx_migrations` records.
async fn versions_in(pool: &PgPool, schema: &str) -> Vec<i64> {
    sqlx::query_scalar(&format!(
        "SELECT version FROM {schema}._sqlx_migrations ORDER BY version"
    ))
    .fetch_all(pool)
    .await
    .unwrap()
}

fn our_versions() -> Vec<i64> {
    MIGRATOR.iter().map(|m| m.version).collect()
}

#[tokio::test]
async fn seckill_lives_in_its_schema_and_leaves_public_alone() {
    let fixture = PgFixture::new().await;
    assert_eq!(fixture.pg_store().schema(), "seckill");
    let pool = app_pool(&fixture).await;
    assert_eq!(objects_in(&pool, "public").await, Vec::<String>::new());
    let ours = objects_in(&pool, "seckill").await;
    for expected in ["_sqlx_migrations", "events", "coupons", "seckill_append()"] {
        assert!(ours.iter().any(|o| o == expected), "{expected} in {ours:?}");
    }
    assert_eq!(versions_in(&pool, "seckill").await, our_versions());
}

#[tokio::test]
async fn an_applications_own_migrations_in_public_run_beside_ours() {
    // The three failures: same version numbers, a timestamped
    // version, and a table named like ours, in both orders of migrating.
    let fixture = PgFixture::new().await;
    let pool = app_pool(&fixture).await;
    APP_MIGRATIONS.run(&pool).await.unwrap();
    let store = fixture.open().await; // migrates again, after theirs
    APP_MIGRATIONS.run(&pool).await.unwrap(); // and theirs again, after ours
    assert_eq!(
        versions_in(&pool, "public").await,
        vec![1, 2, 20250101000000]
    );
    assert_eq!(versions_in(&pool, "seckill").await, our_versions());

    // Each side reads its own `coupons`.
    sqlx::query("INSERT INTO coupons VALUES ('WELCOME', 10)")
        .execute(&pool)
        .await
        .unwrap();
    let mut writer = Writer::create(&store, 5).await;
    writer.append_grabs(&store, "alice", 1).await;
    let held = store
        .coupons_of(&CustomerId::parse("alice0").unwrap())
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    let theirs: Vec<String> = sqlx::query_scalar("SELECT code FROM coupons")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(theirs, ["WELCOME"]);
}

#[tokio::test]
async fn an_old_layout_in_public_moves_into_the_schema_with_its_data() {
    // Built as SecKill built it before the schema option: our migrations
    // into `public`, and the application's there too (timestamped, with
    // ignore_missing: the one way to make them share
    // `public._sqlx_migrations`).
    let fixture = PgFixture::with_options(options().with_schema("public")).await;
    let old = fixture.pg_store();
    let mut writer = Writer::create(old, 10).await;
    writer.append_grabs(old, "early", 3).await;
    let pool = app_pool(&fixture).await;
    loyalty(true).run(&pool).await.unwrap();
    let before = versions_in(&pool, "public").await;
    assert!(before.contains(&20250101000000), "{before:?}");
    let before_positions = old.read_all(0, 100).await.unwrap();

    let store = PgStore::connect_with(fixture.url(), options())
        .await
        .unwrap();

    // Everything of ours moved; the application's row and table stayed.
    assert_eq!(versions_in(&pool, "public").await, vec![20250101000000]);
    assert_eq!(versions_in(&pool, "seckill").await, our_versions());
    assert_eq!(
        objects_in(&pool, "public").await,
        ["_sqlx_migrations", "loyalty"]
    );
    // The data is there, positions and projections included ...
    assert_eq!(store.load_events(writer.id, 0).await.unwrap().len(), 4);
    assert_eq!(store.read_all(0, 100).await.unwrap(), before_positions);
    let early = store
        .coupons_of(&CustomerId::parse("early2").unwrap())
        .await
        .unwrap();
    assert_eq!(early.len(), 1);
    // ... and grabs go on: the summary function and the commit-order
    // trigger moved with their tables.
    writer.append_grabs(&store, "late", 2).await;
    let summary = store.promotion(writer.id).await.unwrap().unwrap();
    assert_eq!(summary.remaining, 5);
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 6);
    // Their migrator no longer needs ignore_missing, and ours moves nothing twice.
    loyalty(false).run(&pool).await.unwrap();
    PgStore::connect_with(fixture.url(), options())
        .await
        .unwrap();
    assert_eq!(versions_in(&pool, "seckill").await, our_versions());
}

#[tokio::test]
async fn an_old_layout_alone_leaves_no_migrations_table_in_public() {
    let fixture = PgFixture::with_options(options().with_schema("public")).await;
    let writer = Writer::create(fixture.pg_store(), 3).await;
    let store = PgStore::connect_with(fixture.url(), options())
        .await
        .unwrap();
    let pool = app_pool(&fixture).await;
    assert_eq!(objects_in(&pool, "public").await, Vec::<String>::new());
    assert_eq!(store.load_events(writer.id, 0).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_schema_that_already_holds_a_table_of_ours_stops_the_move() {
    let fixture = PgFixture::with_options(options().with_schema("public")).await;
    let writer = Writer::create(fixture.pg_store(), 3).await;
    let pool = app_pool(&fixture).await;
    sqlx::raw_sql("CREATE SCHEMA seckill; CREATE TABLE seckill.coupons (x int)")
        .execute(&pool)
        .await
        .unwrap();
    let error = PgStore::connect_with(fixture.url(), options())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ConnectError::Moving { schema, object } if schema == "seckill" && object == "public.coupons"),
        "{error:?}"
    );
    // Nothing moved: the old layout still works as it was.
    assert_eq!(
        fixture
            .pg_store()
            .load_events(writer.id, 0)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(objects_in(&pool, "seckill").await, ["coupons"]);
}

#[tokio::test]
async fn processes_starting_at_once_create_the_schema_once() {
    let fixture = PgFixture::new().await;
    let fresh = || PgStore::connect_with(fixture.url(), options().with_schema("fresh"));
    let (a, b, c) = tokio::join!(fresh(), fresh(), fresh());
    let (a, _b, _c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let writer = Writer::create(&a, 1).await;
    assert_eq!(a.load_events(writer.id, 0).await.unwrap().len(), 1);
    // The fixture's own schema is another installation: it does not see it.
    let other = fixture.pg_store().load_events(writer.id, 0).await.unwrap();
    assert_eq!(other, vec![]);
}

#[tokio::test]
async fn invalid_options_are_refused_before_anything_connects() {
    // Nothing listens on port 1: a refusal that came from the network would
    // be `Connect`, not `Options`.
    let nowhere = "postgres://postgres@127.0.0.1:1/postgres";
    let cases = [
        options().with_max_connections(0),
        options().with_acquire_timeout(Duration::ZERO),
        options().with_statement_timeout(Some(Duration::ZERO)),
        options().with_schema("seckill; DROP TABLE events"),
        options().with_schema("Seckill"),
    ];
    for bad in cases {
        let error = PgStore::connect_with(nowhere, bad.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(error, ConnectError::Options(ref reason) if *reason == bad.validate().unwrap_err()),
            "{bad:?}: {error:?}"
        );
        let pool = PgPool::connect_lazy(nowhere).unwrap();
        assert!(matches!(
            PgStore::from_pool_with(pool, bad),
            Err(ConnectError::Options(_))
        ));
    }
    let error = PgStore::connect_with(nowhere, options().with_schema("a b"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ConnectError::Options(OptionsError::Schema { ref name, .. }) if name == "a b"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_pool_built_from_the_options_is_verified_and_reports_timeouts_with_their_limit() {
    let fixture = PgFixture::new().await;
    // A second, not less: the connection's setup and migrations run under
    // it too, on a disk that can stall.
    let limit = Duration::from_secs(1);
    let options = options()
        .with_max_connections(2)
        .with_statement_timeout(Some(limit));
    let pool = options
        .pool_options()
        .connect_with(options.apply_to(fixture.url().parse().unwrap()))
        .await
        .unwrap();
    let store = PgStore::from_pool_with(pool, options).unwrap();
    store.migrate().await.unwrap();
    let error = common::append_behind_a_lock(fixture.pg_store(), &store).await;
    assert!(
        matches!(error, StoreError::Timeout(d) if d == limit),
        "{error:?}"
    );
}

/// Every connection of the store asks the kernel to write back what it
/// evicts (`backend_flush_after`, the soak's tail in docs/benchmarks.md);
/// `None` leaves the server's setting alone.
#[tokio::test]
async fn the_stores_connections_flush_what_they_write_unless_told_not_to() {
    let fixture = PgFixture::new().await;
    let show = |store: PgStore| async move {
        let setting: String = sqlx::query_scalar("SHOW backend_flush_after")
            .fetch_one(store.pool())
            .await
            .unwrap();
        setting
    };
    let store = PgStore::connect_with(fixture.url(), options())
        .await
        .unwrap();
    assert_eq!(show(store).await, "256kB");
    let store = PgStore::connect_with(
        fixture.url(),
        options().with_backend_flush_after_kb(Some(64)),
    )
    .await
    .unwrap();
    assert_eq!(show(store).await, "64kB");
    // A connection of no options of ours sees the server's setting.
    let plain: sqlx::postgres::PgConnectOptions = fixture.url().parse().unwrap();
    let mut plain = sqlx::PgConnection::connect_with(&plain).await.unwrap();
    let server: String = sqlx::query_scalar("SHOW backend_flush_after")
        .fetch_one(&mut plain)
        .await
        .unwrap();
    let store = PgStore::connect_with(fixture.url(), options().with_backend_flush_after_kb(None))
        .await
        .unwrap();
    assert_eq!(show(store).await, server);
}

#[tokio::test]
async fn a_pool_without_the_schema_on_its_path_is_refused_and_creates_nothing() {
    let fixture = PgFixture::new().await;
    let pool = app_pool(&fixture).await;
    let store = PgStore::from_pool_with(pool.clone(), options().with_schema("elsewhere")).unwrap();
    let error = store.migrate().await.unwrap_err();
    assert!(
        matches!(&error, ConnectError::SearchPath { expected, found }
            if expected == "elsewhere" && found.as_deref() == Some("public")),
        "{error:?}"
    );
    let created: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'elsewhere')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!created, "the schema was rolled back");
    assert_eq!(objects_in(&pool, "public").await, Vec::<String>::new());
    // `from_pool` is the same with the defaults.
    let error = PgStore::from_pool(pool).verify().await.unwrap_err();
    assert!(
        matches!(error, ConnectError::SearchPath { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_pool_with_another_statement_timeout_is_refused() {
    let fixture = PgFixture::new().await;
    let on_path = options().with_statement_timeout(None);
    for (pool_limit, found) in [(None, None), (Some(3), Some(Duration::from_secs(3)))] {
        let pool = on_path
            .clone()
            .with_statement_timeout(pool_limit.map(Duration::from_secs))
            .apply_to(fixture.url().parse().unwrap());
        let pool = PgPool::connect_with(pool).await.unwrap();
        let store = PgStore::from_pool_with(pool.clone(), options()).unwrap();
        let error = store.migrate().await.unwrap_err();
        assert!(
            matches!(error, ConnectError::StatementTimeout { expected, found: f }
                if expected == Duration::from_secs(5) && f == found),
            "{error:?}"
        );
        // Options that leave the limit to the server accept any.
        let lenient = PgStore::from_pool_with(pool, on_path.clone()).unwrap();
        lenient.verify().await.unwrap();
    }
}
