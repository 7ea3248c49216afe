-- The example backend's tables. Run by `PgEsBackend::new` every time a
-- backend opens, as one query, which PostgreSQL runs as one transaction (no
-- BEGIN here: an error then rolls everything back and leaves the connection
-- clean). Each statement is idempotent, and the advisory lock below, held to
-- the end, makes concurrent opens take turns (two concurrent CREATE TABLE IF
-- NOT EXISTS can otherwise both try to create the table, and one fails).
SELECT pg_advisory_xact_lock(7738145395240370001);

-- postgres-es's own `events` table, column for column (its db/init.sql), so
-- its `PostgresEventRepository` reads and writes these rows as its own ...
CREATE TABLE IF NOT EXISTS events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    -- ... plus the event's place in the global order, for `read_all`. Set by
    -- the trigger below; postgres-es's inserts name their seven columns and
    -- never see it.
    position       bigint                       NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE SEQUENCE IF NOT EXISTS events_position;
CREATE UNIQUE INDEX IF NOT EXISTS events_by_position ON events (position);

-- The positions, in commit order.
--
-- A plain `DEFAULT nextval(...)` would not do: transactions take numbers in
-- one order and commit in another, so position 8 can be visible while 7 is
-- still on its way, and a reader that has gone past 7 ("position > 8") never
-- sees it. So every inserter first takes one transaction-level advisory lock,
-- which is held until its transaction ends: inserts run one transaction at a
-- time, each takes its numbers only after the one before it committed or
-- rolled back, and "position > last" never skips. Appends of different
-- promotions queue for the lock; that is the price of the gap-free feed.
--
-- The trigger also keeps each stream free of holes. postgres-es's primary
-- key stops two writers from adding the same sequence number (that is the
-- optimistic lock), but not a writer that skips ahead: a commit expecting
-- sequence 5 on a stream of 3 would add 6 and leave 4 and 5 missing. Under
-- the lock every earlier commit is visible (each query of a volatile function
-- sees what committed before it started), so checking that the predecessor
-- exists is enough; a missing one is reported as the same unique violation
-- (23505) a collision gives, which postgres-es turns into its optimistic-lock
-- error and the backend into `StoreError::Conflict`.
CREATE OR REPLACE FUNCTION events_in_commit_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Any constant no other tool in this database uses.
    PERFORM pg_advisory_xact_lock(7738145395240370002);
    IF NEW.sequence > 1 AND NOT EXISTS (
        SELECT 1 FROM events
        WHERE aggregate_type = NEW.aggregate_type
          AND aggregate_id = NEW.aggregate_id
          AND sequence = NEW.sequence - 1
    ) THEN
        RAISE EXCEPTION 'event #% of % % does not follow the stream''s last event',
            NEW.sequence, NEW.aggregate_type, NEW.aggregate_id
            USING ERRCODE = 'unique_violation';
    END IF;
    NEW.position := nextval('events_position');
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER events_in_commit_order
    BEFORE INSERT ON events
    FOR EACH ROW
    EXECUTE FUNCTION events_in_commit_order();

-- `coupons_of`: a customer's grabs, found by the customer id inside the
-- payload (`{"CouponGrabbed": {"coupon": {"customer_id": ...}}}`). Partial:
-- only grabs have one.
CREATE INDEX IF NOT EXISTS events_by_coupon_holder
    ON events ((payload -> 'CouponGrabbed' -> 'coupon' ->> 'customer_id'))
    WHERE event_type = 'CouponGrabbed';

-- Durable subscriptions: one row per name, holding its checkpoint (the last
-- position handled) and the lease of the one consumer allowed to move it.
-- `epoch` grows whenever the name passes to another consumer; a checkpoint is
-- written only under the current consumer and epoch.
CREATE TABLE IF NOT EXISTS subscriptions
(
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL CHECK (position >= 0),
    consumer   uuid,
    epoch      bigint      NOT NULL,
    expires_at timestamptz
);

-- The key draws' secrets are sealed with (`EventStore::draw_key`): one row,
-- the first key any process offered.
CREATE TABLE IF NOT EXISTS draw_key
(
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key       bytea   NOT NULL CHECK (octet_length(key) = 32)
);
