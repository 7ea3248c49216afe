-- Group commit across promotions, with the events lock held for less and
-- the heads read from the summaries (ADR 0012, fourth-round addendum).
--
-- Migration 0009's function took the events lock (migration 0008) first and
-- held it through everything it wrote and through the commit, so one
-- group's coupons, summaries and the parsing of its arrays ran while the
-- next group waited for the lock, and PostgreSQL ran one group at a time on
-- one core. This version writes the coupons and the summaries first, without
-- the lock, and inserts the events last: the trigger of migration 0008 takes
-- the lock for that insert and holds it until the commit, as before, so
-- positions are still taken in commit order. While one group inserts its
-- events and commits, the next writes its projection rows.
--
-- The heads are now read before the lock, so another writer of the same
-- stream may commit between the read and the insert. The events primary key
-- then refuses this group's first event of that stream (its sequence is
-- taken), the whole transaction rolls back, and the caller appends the
-- commits one by one, each with its exact check (`append.sql`). It needs two
-- commits of one promotion in flight at once (a writer whose store timeout
-- passed and decided again, or two replicas during an ownership handover).
-- Heads only grow, so a head read equal to the expected sequence is either
-- still the head or collides.
--
-- The heads come from the summaries. Migration 0009 read every commit's
-- head from `events`: a descent of its primary key (aggregate type,
-- aggregate id, sequence: two text columns) per commit, about a tenth of
-- PostgreSQL's time with 100 sales at once. The promotion's summary row
-- carries the same number, `last_sequence`, written in the transaction of
-- the events it counts or rebuilt from them, so it is never ahead of its
-- stream: equal to the expected sequence, the stream is there or further,
-- and further collides on the primary key as above. Only where the summary
-- is missing or differs is the stream itself read, and its head decides.
--
-- The same parameters and answer as migration 0009's, so a replica still on
-- the previous release keeps appending through a rolling upgrade. Events now
-- name their stream by the commit's promotion id as text (how the aggregate
-- id is written), so `c_aggregate_id` is no longer read: an element of a
-- uuid array is found by its index, one of a text array only by walking the
-- elements before it.
CREATE OR REPLACE FUNCTION seckill_append_group(
    p_aggregate_type  text,
    p_event_version   text,
    c_aggregate_id    text[],
    c_promotion_id    uuid[],
    c_expected        bigint[],
    e_commit          integer[],
    e_sequence        bigint[],
    e_type            text[],
    e_payload         text[],
    g_commit          integer[],
    g_number          integer[],
    g_customer_id     text[],
    g_discount        double precision[],
    g_grabbed_at      timestamptz[],
    s_name            text[],
    s_number          integer[],
    s_remaining       integer[],
    s_discount        double precision[],
    s_publish_time    timestamptz[],
    s_finish_time     timestamptz[],
    s_finish_reason   text[],
    s_finished_at     timestamptz[],
    s_last_sequence   bigint[]
) RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    heads bigint[];
    -- Parsed here, before the lock, not while the insert holds it.
    payloads json[] := e_payload::json[];
BEGIN
    -- The heads as the summaries have them: a lookup by uuid in a table of
    -- one row a promotion. Only where one differs from the commit's expected
    -- sequence is the stream itself read (the exact head, as migration 0009
    -- read for every commit): a conflict, a new promotion whose summary is
    -- missing, or a summary behind its events.
    SELECT coalesce(array_agg(
               CASE WHEN ps.last_sequence = c.expected THEN ps.last_sequence
                    ELSE coalesce((SELECT max(ev.sequence) FROM events ev
                                   WHERE ev.aggregate_type = p_aggregate_type
                                     AND ev.aggregate_id = c.promotion_id::text), 0)
               END
               ORDER BY c.ordinal), '{}')
    INTO heads
    FROM unnest(c_promotion_id, c_expected) WITH ORDINALITY AS c (promotion_id, expected, ordinal)
    LEFT JOIN promotion_summaries ps ON ps.promotion_id = c.promotion_id;

    INSERT INTO coupons (promotion_id, number, customer_id, discount, grabbed_at)
    SELECT c_promotion_id[g.commit], g.number, g.customer_id, g.discount, g.grabbed_at
    FROM unnest(g_commit, g_number, g_customer_id, g_discount, g_grabbed_at)
        AS g (commit, number, customer_id, discount, grabbed_at)
    WHERE heads[g.commit] = c_expected[g.commit];

    -- One statement for every summary: a call of upsert_promotion_summary
    -- per row costs more than all the group's events together, so this is
    -- the one other place that lists the columns (keep it in step with
    -- migration 0004). A stream appears once, so no row is updated twice.
    INSERT INTO promotion_summaries AS ps (promotion_id, name, number_of_coupons, remaining, discount,
                                           publish_time, finish_time, finish_reason, finished_at,
                                           last_sequence)
    SELECT c_promotion_id[s.ordinal], s.name, s.number, s.remaining, s.discount, s.publish_time,
           s.finish_time, s.finish_reason, s.finished_at, s.last_sequence
    FROM unnest(s_name, s_number, s_remaining, s_discount, s_publish_time, s_finish_time,
                s_finish_reason, s_finished_at, s_last_sequence)
        WITH ORDINALITY AS s (name, number, remaining, discount, publish_time, finish_time,
                              finish_reason, finished_at, last_sequence, ordinal)
    WHERE heads[s.ordinal] = c_expected[s.ordinal]
    ON CONFLICT (promotion_id) DO UPDATE SET
        name              = excluded.name,
        number_of_coupons = excluded.number_of_coupons,
        remaining         = excluded.remaining,
        discount          = excluded.discount,
        publish_time      = excluded.publish_time,
        finish_time       = excluded.finish_time,
        finish_reason     = excluded.finish_reason,
        finished_at       = excluded.finished_at,
        last_sequence     = excluded.last_sequence;

    -- Last: its trigger takes the events lock, held until the commit.
    INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
    SELECT p_aggregate_type, c_promotion_id[e.commit]::text, e.sequence, e.event_type, p_event_version,
           e.payload, '{}'::json
    FROM unnest(e_commit, e_sequence, e_type, payloads) AS e (commit, sequence, event_type, payload)
    WHERE heads[e.commit] = c_expected[e.commit];

    RETURN heads;
END
$$;
