-- Assigns promotion $1 to its preferred live replica, unless a live replica
-- owns it already; $2 is the asking replica, the choice if no row is live.
-- Answers the new owner and epoch, or no row when a live owner was there
-- (then owner.sql names it).
--
-- The preferred replica is the live one with the highest hash of (replica,
-- promotion): rendezvous hashing, so promotions spread evenly and each one's
-- choice moves only when its preferred replica comes or goes.
--
-- Concurrent claims are safe under READ COMMITTED: ON CONFLICT locks the
-- existing row and re-checks the WHERE on its newest version, so of two
-- claims of a dead owner's promotion only one bumps the epoch.
INSERT INTO promotion_owners AS o (promotion_id, replica_id, epoch)
SELECT $1, COALESCE(
    (SELECT replica_id FROM replicas
     WHERE expires_at > now()
     ORDER BY md5(replica_id::text || $1::text) DESC
     LIMIT 1),
    $2), 1
ON CONFLICT (promotion_id) DO UPDATE
    SET replica_id = EXCLUDED.replica_id, epoch = o.epoch + 1
    WHERE NOT EXISTS (
        SELECT 1 FROM replicas r
        WHERE r.replica_id = o.replica_id AND r.expires_at > now())
RETURNING replica_id, epoch
