-- Ownership across replicas (docs/adr/0008): which live process runs each
-- promotion's writer. Coordination data only, never a source of truth: the
-- events' primary key still refuses a stale owner's append.

-- One row per server process. A replica is live while `expires_at` is ahead
-- of the database's clock; it pushes it forward with every heartbeat. The
-- database's `now()` is the only clock compared, so replicas' clocks may differ.
CREATE TABLE replicas
(
    replica_id uuid        PRIMARY KEY,
    address    text        NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Who owns each promotion. The owner is valid only while its replica's row
-- is live; a claim that finds it lapsed assigns the promotion again and adds
-- one to `epoch`.
CREATE TABLE promotion_owners
(
    promotion_id uuid   PRIMARY KEY,
    replica_id   uuid   NOT NULL,
    epoch        bigint NOT NULL CHECK (epoch >= 1)
);

-- "Which promotions does this replica own?", for hand-over and metrics.
CREATE INDEX promotion_owners_by_replica ON promotion_owners (replica_id);
