-- Draws (issue 26, ADR 0016, docs/draws.md).
--
-- A summary row carries where a draw stands (`draw`: its close, entries so
-- far, the seal of its secret, and the secret once drawn, as JSON; NULL for
-- first come), so the queries show it and the engine's timer finds the
-- draws due at their close after a restart. The two functions of the one
-- write path (migration 0011) take it as one more array, last.
--
-- `seckill_draw_key` keeps the key draws' secrets are sealed with: one row,
-- written by the first process that needs it (`INSERT .. ON CONFLICT DO
-- NOTHING`, then read back), so every replica and every restart seals and
-- opens with the same key. Whoever can read this table can open a pending
-- draw's secret; `--draw-key` keeps the key out of the database instead.

ALTER TABLE promotion_summaries ADD COLUMN draw jsonb;
-- A draw finishes as `drawn`.
ALTER TABLE promotion_summaries DROP CONSTRAINT promotion_summaries_finish_reason_check;
ALTER TABLE promotion_summaries ADD CONSTRAINT promotion_summaries_finish_reason_check
    CHECK (finish_reason IN ('sold_out', 'expired', 'cancelled', 'drawn'));

CREATE TABLE seckill_draw_key (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key       bytea   NOT NULL CHECK (octet_length(key) = 32)
);

DROP FUNCTION seckill_append(text, text, uuid[], bigint[], integer[], bigint[], text[], text[],
    integer[], integer[], text[], double precision[], timestamptz[], text[], integer[], integer[],
    double precision[], timestamptz[], timestamptz[], text[], timestamptz[], bigint[]);
DROP FUNCTION seckill_upsert_summaries(uuid[], text[], integer[], integer[], double precision[],
    timestamptz[], timestamptz[], text[], timestamptz[], bigint[]);

-- As in migration 0011, with `s_draw` last.
CREATE OR REPLACE FUNCTION seckill_upsert_summaries(
    s_promotion_id  uuid[],
    s_name          text[],
    s_number        integer[],
    s_remaining     integer[],
    s_discount      double precision[],
    s_publish_time  timestamptz[],
    s_finish_time   timestamptz[],
    s_finish_reason text[],
    s_finished_at   timestamptz[],
    s_last_sequence bigint[],
    s_draw          text[]
) RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    INSERT INTO promotion_summaries AS ps (promotion_id, name, number_of_coupons, remaining, discount,
                                           publish_time, finish_time, finish_reason, finished_at,
                                           last_sequence, draw)
    SELECT s.promotion_id, s.name, s.number, s.remaining, s.discount, s.publish_time,
           s.finish_time, s.finish_reason, s.finished_at, s.last_sequence, s.draw::jsonb
    FROM unnest(s_promotion_id, s_name, s_number, s_remaining, s_discount, s_publish_time,
                s_finish_time, s_finish_reason, s_finished_at, s_last_sequence, s_draw)
        AS s (promotion_id, name, number, remaining, discount, publish_time, finish_time,
              finish_reason, finished_at, last_sequence, draw)
    WHERE s.promotion_id IS NOT NULL
    ON CONFLICT (promotion_id) DO UPDATE SET
        name              = excluded.name,
        number_of_coupons = excluded.number_of_coupons,
        remaining         = excluded.remaining,
        discount          = excluded.discount,
        publish_time      = excluded.publish_time,
        finish_time       = excluded.finish_time,
        finish_reason     = excluded.finish_reason,
        finished_at       = excluded.finished_at,
        last_sequence     = excluded.last_sequence,
        draw              = excluded.draw;
END
$$;

-- As in migration 0011, with `s_draw` last.
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
    s_draw           text[]
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
           e.payload, '{}'::json
    FROM unnest(e_commit, e_sequence, e_type, payloads) AS e (commit, sequence, event_type, payload)
    WHERE heads[e.commit] = c_expected[e.commit];

    RETURN heads;
END
$$;
