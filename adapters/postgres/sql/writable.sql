-- Whether this connection's server takes writes: not a standby (in recovery,
-- as a demoted primary is after a failover) and not read-only by setting.
SELECT pg_is_in_recovery() AS in_recovery,
       current_setting('transaction_read_only') = 'on' AS read_only
