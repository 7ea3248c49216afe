//! The schema SecKill lives in (ADR 0014): created when missing, checked
//! against the pool's `search_path`, and, on a database from before the
//! schema option, filled by moving SecKill's tables, functions and migration
//! rows out of `public` in one transaction.

use sqlx::{PgConnection, PgPool};

use crate::error::ConnectError;
use crate::store::MIGRATOR;

const LOCK: &str = include_str!("../sql/schema_lock.sql");
const EXISTS: &str = include_str!("../sql/schema_exists.sql");
const LEGACY_LAYOUT: &str = include_str!("../sql/legacy_layout.sql");
const LEGACY_MIGRATIONS: &str = include_str!("../sql/legacy_migrations.sql");
const LEGACY_OBJECTS: &str = include_str!("../sql/legacy_objects.sql");
const MOVE_MIGRATIONS: &str = include_str!("../sql/legacy_migrations_move.sql");

/// Every table our migrations create. A new migration's table joins this
/// list, so an old layout that has it moves with the rest.
const TABLES: [&str; 8] = [
    "events",
    "snapshots",
    "coupons",
    "promotion_summaries",
    "replicas",
    "promotion_owners",
    "subscriptions",
    "seckill_draw_key",
];

/// Creates `schema` if missing and moves an old layout into it, in one
/// transaction under an advisory lock, after checking that the pool's
/// connections resolve names to it. `schema` is validated
/// ([`PgOptions::validate`](crate::PgOptions::validate)): it is spliced into
/// DDL, always double-quoted.
pub(crate) async fn prepare(pool: &PgPool, schema: &str) -> Result<(), ConnectError> {
    let failed = |doing: &str| {
        let doing = doing.to_owned();
        move |source| ConnectError::Schema { doing, source }
    };
    let mut tx = pool.begin().await.map_err(failed("beginning"))?;
    sqlx::query(LOCK)
        .execute(&mut *tx)
        .await
        .map_err(failed("waiting for other processes preparing it"))?;
    let exists: bool = sqlx::query_scalar(EXISTS)
        .bind(schema)
        .fetch_one(&mut *tx)
        .await
        .map_err(failed("looking it up"))?;
    if !exists {
        sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&mut *tx)
            .await
            .map_err(failed("creating it"))?;
    }
    // Now that it exists: a pool whose search_path leads elsewhere would put
    // our tables (and _sqlx_migrations) there. Returning drops `tx`, which
    // rolls back the schema just created.
    let found: Option<String> = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&mut *tx)
        .await
        .map_err(failed("reading current_schema()"))?;
    if found.as_deref() != Some(schema) {
        return Err(ConnectError::SearchPath {
            expected: schema.to_owned(),
            found,
        });
    }
    if schema != "public" {
        move_old_layout(&mut tx, schema).await?;
    }
    tx.commit().await.map_err(failed("committing"))?;
    Ok(())
}

/// Moves SecKill's objects from `public` into the empty `schema` when
/// `public._sqlx_migrations` records our first migration; does nothing
/// otherwise. Runs inside [`prepare`]'s transaction: all of it, or none.
async fn move_old_layout(tx: &mut PgConnection, schema: &str) -> Result<(), ConnectError> {
    let failed = |doing: &str| {
        let doing = format!("moving SecKill's tables from public: {doing}");
        move |source| ConnectError::Schema { doing, source }
    };
    let candidate: bool = sqlx::query_scalar(LEGACY_LAYOUT)
        .bind(schema)
        .fetch_one(&mut *tx)
        .await
        .map_err(failed("looking for them"))?;
    if !candidate {
        return Ok(());
    }
    let ours = with_our_migrations(tx, LEGACY_MIGRATIONS)
        .await
        .map_err(failed("reading public._sqlx_migrations"))?;
    if ours == 0 {
        // Someone else's migrations only: `public` holds no SecKill.
        return Ok(());
    }
    let objects: Vec<(String, String, bool)> = sqlx::query_as(LEGACY_OBJECTS)
        .bind(TABLES)
        .bind(schema)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed("listing them"))?;
    if let Some((_, object, _)) = objects.iter().find(|(_, _, taken)| *taken) {
        return Err(ConnectError::Moving {
            schema: schema.to_owned(),
            object: object.clone(),
        });
    }
    // Indexes, constraints, the identity sequence of `events.position` and
    // the trigger on `events` go with their tables; the trigger names its
    // function by oid, so it still finds it after the function moves.
    for (kind, object, _) in &objects {
        let kind = if kind == "table" { "TABLE" } else { "FUNCTION" };
        sqlx::query(&format!("ALTER {kind} {object} SET SCHEMA \"{schema}\""))
            .execute(&mut *tx)
            .await
            .map_err(failed(&format!("moving {object}")))?;
    }
    sqlx::query(&format!(
        "CREATE TABLE \"{schema}\"._sqlx_migrations (LIKE public._sqlx_migrations INCLUDING ALL)"
    ))
    .execute(&mut *tx)
    .await
    .map_err(failed("creating the new _sqlx_migrations"))?;
    let kept = with_our_migrations(tx, MOVE_MIGRATIONS)
        .await
        .map_err(failed("moving our rows of _sqlx_migrations"))?;
    if kept == 0 {
        // It held only ours: nothing of the application's is lost, and its
        // own migrator recreates the table when it first runs.
        sqlx::query("DROP TABLE public._sqlx_migrations")
            .execute(&mut *tx)
            .await
            .map_err(failed("dropping the emptied public._sqlx_migrations"))?;
    }
    tracing::info!(
        schema,
        objects = objects.len(),
        migrations = ours,
        "moved SecKill's tables, functions and migrations from public"
    );
    Ok(())
}

/// Runs `statement` with our migrations' versions ($1) and checksums ($2),
/// and answers the count it returns.
async fn with_our_migrations(tx: &mut PgConnection, statement: &str) -> Result<i64, sqlx::Error> {
    let (versions, checksums): (Vec<i64>, Vec<Vec<u8>>) = MIGRATOR
        .iter()
        .map(|m| (m.version, m.checksum.to_vec()))
        .unzip();
    sqlx::query_scalar(statement)
        .bind(versions)
        .bind(checksums)
        .fetch_one(tx)
        .await
}
