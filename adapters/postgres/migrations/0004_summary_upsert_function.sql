-- The one definition of how a promotion's summary row is written: inserted,
-- or replaced field by field. Both `sql/append.sql` and
-- `sql/replace_projection.sql` call it, and `SummaryRow::bind` binds its
-- parameters in this order, so the column list exists once.
--
-- A function created by a migration, not a statement file, because it is
-- called from inside two other statements; CREATE OR REPLACE keeps this
-- migration safe on every existing database (it adds, and changes no table).
CREATE OR REPLACE FUNCTION upsert_promotion_summary(
    promotion_id      uuid,
    name              text,
    number_of_coupons integer,
    remaining         integer,
    discount          double precision,
    publish_time      timestamptz,
    finish_time       timestamptz,
    finish_reason     text,
    finished_at       timestamptz,
    last_sequence     bigint
) RETURNS void
LANGUAGE sql VOLATILE
AS $$
    -- Positional parameters: the names are the columns', and a column wins over a
    -- parameter of the same name wherever both are in scope.
    INSERT INTO promotion_summaries (promotion_id, name, number_of_coupons, remaining, discount,
                                     publish_time, finish_time, finish_reason, finished_at, last_sequence)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    ON CONFLICT (promotion_id) DO UPDATE SET
        name              = excluded.name,
        number_of_coupons = excluded.number_of_coupons,
        remaining         = excluded.remaining,
        discount          = excluded.discount,
        publish_time      = excluded.publish_time,
        finish_time       = excluded.finish_time,
        finish_reason     = excluded.finish_reason,
        finished_at       = excluded.finished_at,
        last_sequence     = excluded.last_sequence
$$;
