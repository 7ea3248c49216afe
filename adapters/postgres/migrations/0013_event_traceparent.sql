-- Trace context in the events (issue 27, ADR 0017): each event's
-- `metadata` holds the W3C `traceparent` of the sampled command that
-- caused it, `{"traceparent": "00-…"}`, and `{}` as before for the rest,
-- so a reader of the feed (the JetStream publisher) continues the trace.
--
-- `seckill_append` takes one more array, last: per event, its traceparent
-- or NULL. The previous signature (migration 0012) stays, so replicas of
-- the previous version keep appending during a rolling upgrade; their
-- events carry no traceparent. A later migration drops it.

-- As in migration 0012, with `e_traceparent` last.
CREATE OR REPLACE FUNCTION seckill_append(
    p_aggregate_type text,
    p_event_version  text,
    c_promotion_id   uuid[],
    c_expected       bigint[],
    e_commit         integer[],
    e_sequence       bigint[],
    e_type           text[],
    e_payload        text[],
    g_commit         integer[],
    g_number         integer[],
    g_customer_id    text[],
    g_discount       double precision[],
    g_grabbed_at     timestamptz[],
    s_name           text[],
    s_number         integer[],
    s_remaining      integer[],
    s_discount       double precision[],
    s_publish_time   timestamptz[],
    s_finish_time    timestamptz[],
    s_finish_reason  text[],
    s_finished_at    timestamptz[],
    s_last_sequence  bigint[],
    s_draw           text[],
    e_traceparent    text[]
) RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    heads bigint[];
    written uuid[];
    -- Parsed here, before the lock, not while the insert holds it.
    payloads json[] := e_payload::json[];
BEGIN
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

    -- The promotions whose commits are written; NULL for the others.
    written := ARRAY(SELECT CASE WHEN heads[i] = c_expected[i] THEN c_promotion_id[i] END
                     FROM generate_subscripts(c_promotion_id, 1) AS i ORDER BY i);

    INSERT INTO coupons (promotion_id, number, customer_id, discount, grabbed_at)
    SELECT c_promotion_id[g.commit], g.number, g.customer_id, g.discount, g.grabbed_at
    FROM unnest(g_commit, g_number, g_customer_id, g_discount, g_grabbed_at)
        AS g (commit, number, customer_id, discount, grabbed_at)
    WHERE heads[g.commit] = c_expected[g.commit];

    PERFORM seckill_upsert_summaries(written, s_name, s_number, s_remaining, s_discount,
                                     s_publish_time, s_finish_time, s_finish_reason,
                                     s_finished_at, s_last_sequence, s_draw);

    -- Last: its trigger takes the events lock, held until the commit.
    INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
    SELECT p_aggregate_type, c_promotion_id[e.commit]::text, e.sequence, e.event_type, p_event_version,
           e.payload,
           CASE WHEN e.traceparent IS NULL THEN '{}'::json
                ELSE json_build_object('traceparent', e.traceparent) END
    FROM unnest(e_commit, e_sequence, e_type, payloads, e_traceparent)
        AS e (commit, sequence, event_type, payload, traceparent)
    WHERE heads[e.commit] = c_expected[e.commit];

    RETURN heads;
END
$$;
