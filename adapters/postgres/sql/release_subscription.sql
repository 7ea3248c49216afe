-- Gives subscription $1 up, if consumer $2 holds it under epoch $3: a
-- standby's next claim takes it at once.
UPDATE subscriptions
SET consumer = NULL, expires_at = NULL
WHERE name = $1 AND consumer = $2 AND epoch = $3
