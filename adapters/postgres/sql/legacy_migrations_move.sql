-- Moves SecKill's rows of `public._sqlx_migrations` ($1 versions, $2
-- checksums, as in legacy_migrations.sql) into the new schema's table, which
-- the caller created just before (`CREATE TABLE <schema>._sqlx_migrations
-- (LIKE public._sqlx_migrations INCLUDING ALL)`), unqualified here because
-- the new schema is alone on the connection's search_path. Answers how many
-- rows `public._sqlx_migrations` keeps: the application's own.
WITH moved AS (
    DELETE FROM public._sqlx_migrations m
    WHERE (m.version, m.checksum) IN (SELECT * FROM unnest($1::bigint[], $2::bytea[]))
    RETURNING m.*
),
copied AS (
    INSERT INTO _sqlx_migrations SELECT * FROM moved
)
SELECT count(*) - (SELECT count(*) FROM moved) FROM public._sqlx_migrations
