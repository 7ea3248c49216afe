-- The key draws' secrets are sealed with (migration 0012): $1 is written
-- only if no key is kept yet; either way the kept key is answered, so every
-- process that asks gets the first one written.
WITH offered AS (
    INSERT INTO seckill_draw_key (key) VALUES ($1)
    ON CONFLICT (singleton) DO NOTHING
    RETURNING key
)
SELECT key FROM offered
UNION ALL
SELECT key FROM seckill_draw_key
LIMIT 1
