-- Durable subscriptions (docs/events.md): one row per name, holding its
-- checkpoint (the last global position handled) and the lease of the one
-- consumer allowed to move it.
--
-- `epoch` grows whenever the name passes to another consumer; a checkpoint
-- is written only with the current consumer and epoch, so a consumer that
-- lost its lease (paused, partitioned) can never move it again.
CREATE TABLE IF NOT EXISTS subscriptions (
    name        text        PRIMARY KEY,
    position    bigint      NOT NULL CHECK (position >= 0),
    consumer    uuid,
    epoch       bigint      NOT NULL DEFAULT 0,
    expires_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
