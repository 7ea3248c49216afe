-- Locks subscription $1's row for a transactional delivery, only under the
-- current lease (consumer $2, epoch $3). While the lock is held a takeover's
-- claim waits, so the handler's writes and the checkpoint commit together
-- under one consumer or not at all.
SELECT position FROM subscriptions
WHERE name = $1 AND consumer = $2 AND epoch = $3
FOR UPDATE
