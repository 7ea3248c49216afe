-- One write path (ADR 0012): every commit, alone or in a group, is written by
-- one function, `seckill_append`, and every summary row by one function,
-- `seckill_upsert_summaries`, the one place that lists the summary's columns.
--
-- It replaces `append.sql` (one commit a statement), `seckill_append_group`
-- (migrations 0009 and 0010) and `upsert_promotion_summary` (migration 0004).
-- Replicas of a build before this migration call functions it drops, so
-- every replica runs this build before the first runs this migration (no
-- release has shipped the old ones).

DROP FUNCTION IF EXISTS seckill_append_group(
    text, text, text[], uuid[], bigint[], integer[], bigint[], text[], text[],
    integer[], integer[], text[], double precision[], timestamptz[],
    text[], integer[], integer[], double precision[], timestamptz[], timestamptz[],
    text[], timestamptz[], bigint[]);
DROP FUNCTION IF EXISTS upsert_promotion_summary(
    uuid, text, integer, integer, double precision, timestamptz, timestamptz,
    text, timestamptz, bigint);

-- Inserts or replaces the summary rows, one per element; a NULL promotion id
-- skips its element (how `seckill_append` leaves out a conflicting commit).
-- The arrays are the columns, in the table's order. plpgsql, not sql: its
-- plan is prepared once per connection, not at every call.
--
-- Both functions use generic plans. With PostgreSQL's default, plpgsql may
-- plan a statement anew for each call's arrays (a custom plan for a
-- one-element array looks cheaper than the generic one); a lone commit was
-- measurably slower that way than the statement this replaces, and as fast
-- with generic plans (docs/benchmarks/write-path.md). The generic plans are
-- the same index lookups and unnests.
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
    s_last_sequence bigint[]
) RETURNS void
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    INSERT INTO promotion_summaries AS ps (promotion_id, name, number_of_coupons, remaining, discount,
                                           publish_time, finish_time, finish_reason, finished_at,
                                           last_sequence)
    SELECT s.promotion_id, s.name, s.number, s.remaining, s.discount, s.publish_time,
           s.finish_time, s.finish_reason, s.finished_at, s.last_sequence
    FROM unnest(s_promotion_id, s_name, s_number, s_remaining, s_discount, s_publish_time,
                s_finish_time, s_finish_reason, s_finished_at, s_last_sequence)
        AS s (promotion_id, name, number, remaining, discount, publish_time, finish_time,
              finish_reason, finished_at, last_sequence)
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
        last_sequence     = excluded.last_sequence;
END
$$;

-- Appends commits of distinct promotions in one transaction; answers every
-- stream's head as read, in the order of the commits: equal to the commit's
-- expected sequence means the commit was written, anything else that none
-- of it was.
--
-- The arrays: one entry per commit (c_*), per event (e_*, e_commit pointing
-- into the commit arrays from 1), per granted coupon (g_*), and the summary
-- after each commit (s_*, one per commit, as `seckill_upsert_summaries`
-- takes them). A promotion appears at most once: the caller ensures it.
--
-- The heads come from the summaries: a lookup by uuid in a table of one row
-- a promotion, where a descent of the events' primary key (two text columns)
-- cost about a tenth of PostgreSQL's time with 100 sales at once. A summary
-- row is written in the transaction of the events it counts, or rebuilt
-- from them under its row lock, so it is never ahead of its stream. Only
-- where it is missing (a new promotion) or differs from the expected
-- sequence is the stream itself read.
--
-- The projection rows are written first, and the events last: the events'
-- trigger (migration 0008) takes the events lock and holds it until the
-- commit, so positions follow commit order, and the lock is held only for
-- the insert and the commit. The heads are read before that lock, so another
-- writer of the same stream may commit in between. Heads only grow, so the
-- events' primary key then refuses this call's first event of that stream,
-- the whole transaction rolls back, and the caller sends each commit alone,
-- where that refusal is the commit's conflict.
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
    s_last_sequence  bigint[]
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
                                     s_finished_at, s_last_sequence);

    -- Last: its trigger takes the events lock, held until the commit.
    INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
    SELECT p_aggregate_type, c_promotion_id[e.commit]::text, e.sequence, e.event_type, p_event_version,
           e.payload, '{}'::json
    FROM unnest(e_commit, e_sequence, e_type, payloads) AS e (commit, sequence, event_type, payload)
    WHERE heads[e.commit] = c_expected[e.commit];

    RETURN heads;
END
$$;
