-- Whether SecKill's tables may still sit in `public`, from before the schema
-- option (ADR 0014): `public` has a migrations table, and schema $1 none yet.
-- Whose migrations it holds is asked next (legacy_migrations.sql): that
-- table cannot be named in this statement before it is known to exist.
SELECT to_regclass('public._sqlx_migrations') IS NOT NULL
   AND to_regclass(format('%I._sqlx_migrations', $1::text)) IS NULL
