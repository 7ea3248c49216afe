-- Ends replica $1's lease now. Its owner rows stay, naming a lapsed
-- replica, so the next claim of each reassigns it with the next epoch.
UPDATE replicas SET expires_at = now() - interval '1 microsecond' WHERE replica_id = $1
