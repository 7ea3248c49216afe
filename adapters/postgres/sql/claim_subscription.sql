-- Claims subscription $1 for consumer $2 until $3 milliseconds from now, or
-- renews the claim; a new name starts at position $4. Answers the epoch and
-- the checkpoint, or no row while another consumer's lease runs.
--
-- The epoch stays when the holder renews and grows when the name changes
-- hands (`IS DISTINCT FROM`, so a released row, consumer NULL, counts as
-- another hand). Concurrent claims are safe under READ COMMITTED: ON
-- CONFLICT locks the row and re-checks the WHERE on its newest version.
INSERT INTO subscriptions AS s (name, position, consumer, epoch, expires_at)
VALUES ($1, $4, $2, 1, now() + $3 * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE
    SET consumer = EXCLUDED.consumer,
        epoch = s.epoch + CASE WHEN s.consumer IS DISTINCT FROM EXCLUDED.consumer THEN 1 ELSE 0 END,
        expires_at = EXCLUDED.expires_at
    WHERE s.consumer = EXCLUDED.consumer OR s.consumer IS NULL OR s.expires_at <= now()
RETURNING epoch, position
