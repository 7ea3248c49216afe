-- Group commit across promotions (ADR 0012): the commits of many promotions'
-- writers in one call, so one transaction, one round trip, one fsync and one
-- turn at the events lock (migration 0008) serve them all.
--
-- Each commit keeps its own optimistic check. The function first takes the
-- events lock, then reads every stream's head: a VOLATILE plpgsql function
-- takes a fresh snapshot for each statement (READ COMMITTED), and every
-- inserter into `events` holds that lock until it commits, so the heads read
-- after it are exact, not a snapshot that another writer may have moved past.
-- A commit whose stream is not at its expected sequence writes nothing, and
-- the others are written. The answer is each stream's head as read: equal to
-- the commit's expected sequence means the commit was written.
--
-- The arrays: one entry per commit (c_*), per event (e_*, e_commit pointing
-- into the commit arrays from 1), per granted coupon (g_*), and the summary
-- after each commit (s_*, one per commit, in upsert_promotion_summary's
-- parameter order, migration 0004). A stream appears at most once: the
-- caller ensures it.
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
BEGIN
    -- The key of migration 0008's trigger: taken first, so the heads below
    -- are read after every earlier inserter finished.
    PERFORM pg_advisory_xact_lock(7738145395240370547);

    SELECT coalesce(array_agg(
               coalesce((SELECT max(ev.sequence) FROM events ev
                         WHERE ev.aggregate_type = p_aggregate_type
                           AND ev.aggregate_id = c.aggregate_id), 0)
               ORDER BY c.ordinal), '{}')
    INTO heads
    FROM unnest(c_aggregate_id) WITH ORDINALITY AS c (aggregate_id, ordinal);

    INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
    SELECT p_aggregate_type, c_aggregate_id[e.commit], e.sequence, e.event_type, p_event_version,
           e.payload::json, '{}'::json
    FROM unnest(e_commit, e_sequence, e_type, e_payload) AS e (commit, sequence, event_type, payload)
    WHERE heads[e.commit] = c_expected[e.commit];

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

    RETURN heads;
END
$$;
