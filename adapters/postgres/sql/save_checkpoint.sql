-- Moves subscription $1's checkpoint forward to $4, only under the current
-- lease (consumer $2, epoch $3). No row updated: the lease was lost.
UPDATE subscriptions
SET position = GREATEST(position, $4), updated_at = now()
WHERE name = $1 AND consumer = $2 AND epoch = $3
