-- How far this server's data is behind its primary, in seconds: 0 when it
-- has replayed everything it received (or is not a standby at all), else
-- the age of the last transaction it replayed.
SELECT CASE
           WHEN NOT pg_is_in_recovery() THEN 0
           WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
           ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)
       END::float8
