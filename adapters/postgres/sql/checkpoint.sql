-- Subscription $1's checkpoint, if the name was ever claimed.
SELECT position FROM subscriptions WHERE name = $1
