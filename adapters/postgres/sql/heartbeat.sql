-- Joins or renews one replica's lease ($1 id, $2 address, $3 lease in
-- milliseconds), forgets replicas long dead, and answers the live ones.
WITH renewed AS (
    INSERT INTO replicas (replica_id, address, expires_at)
    VALUES ($1, $2, now() + make_interval(secs => $3 / 1000.0))
    ON CONFLICT (replica_id) DO UPDATE
        SET address = EXCLUDED.address, expires_at = EXCLUDED.expires_at
    RETURNING replica_id, address
),
-- A lapsed row is kept an hour for the logs' sake, then dropped; its
-- promotions are reassigned by the next claim either way.
forgotten AS (
    DELETE FROM replicas
    WHERE expires_at < now() - interval '1 hour' AND replica_id <> $1
)
SELECT replica_id, address FROM renewed
UNION ALL
SELECT replica_id, address FROM replicas
WHERE expires_at > now() AND replica_id <> $1
