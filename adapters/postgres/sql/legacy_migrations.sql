-- How many of `public._sqlx_migrations`' rows are SecKill's: the same version
-- and checksum as one of ours ($1 versions, $2 checksums). An application's
-- own migrations there may share a version number, never the checksum.
SELECT count(*) FROM public._sqlx_migrations m
WHERE (m.version, m.checksum) IN (SELECT * FROM unnest($1::bigint[], $2::bytea[]))
