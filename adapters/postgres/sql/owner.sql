-- The live owner of promotion $1, with its address and epoch; no row if its
-- owner's lease has lapsed (then claim.sql assigns it again).
SELECT o.replica_id, r.address, o.epoch
FROM promotion_owners o
JOIN replicas r ON r.replica_id = o.replica_id AND r.expires_at > now()
WHERE o.promotion_id = $1
