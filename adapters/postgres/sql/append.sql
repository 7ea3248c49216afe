-- Appends one commit in ONE statement: the events, the coupons they grant and
-- the promotion's summary, all or nothing.
--
-- $1 aggregate_type  $2 aggregate_id  $3 expected sequence  $4 event_version
-- $5 event types[]   $6 payloads[] (JSON text, kept byte for byte)
-- $7 promotion id    $8..$11 the granted coupons, one array per column
-- $12..$20 the summary after the commit, upserted by `upsert_promotion_summary`
--   (migration 0004)
--
-- Concurrency: the head check turns a stale or too-new expected sequence into
-- "nothing written", and a writer that raced us past the check collides on the
-- events primary key (SQLSTATE 23505), which aborts the whole statement.
WITH head AS (
    SELECT coalesce(max(sequence), 0) AS last_sequence
    FROM events
    WHERE aggregate_type = $1 AND aggregate_id = $2
),
appended AS (
    INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
    SELECT $1, $2, $3 + e.ordinal, e.event_type, $4, e.payload::json, '{}'::json
    FROM unnest($5::text[], $6::text[]) WITH ORDINALITY AS e (event_type, payload, ordinal)
    WHERE (SELECT last_sequence FROM head) = $3
    RETURNING sequence
),
-- Counting forces every event in before any projection row is written, so a
-- concurrent writer is reported as a conflict on the events, not on coupons.
committed AS (
    SELECT (SELECT last_sequence FROM head) = $3
       AND (SELECT count(*) FROM appended) = cardinality($5::text[]) AS ok
),
granted AS (
    INSERT INTO coupons (promotion_id, number, customer_id, discount, grabbed_at)
    SELECT $7, c.number, c.customer_id, c.discount, c.grabbed_at
    FROM unnest($8::integer[], $9::text[], $10::float8[], $11::timestamptz[])
        AS c (number, customer_id, discount, grabbed_at)
    WHERE (SELECT ok FROM committed)
),
-- A CTE that only selects runs only if the query reads it: the LEFT JOIN below
-- does, and still returns the head when nothing was committed.
summarised AS (
    SELECT upsert_promotion_summary($7, $12, $13, $14, $15, $16, $17, $18, $19, $20)
    WHERE (SELECT ok FROM committed)
)
SELECT head.last_sequence FROM head LEFT JOIN summarised ON true
