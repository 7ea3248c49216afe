-- SecKill's tables ($1, names) and functions in `public`, as names to put
-- in ALTER statements: `public.events`, `public.upsert_promotion_summary(uuid, ...)`.
-- Our functions are `upsert_promotion_summary` and every `seckill_*` one.
-- `kind` 'table' or 'function'; `taken` when schema $2 already has an
-- object of that name, which stops the move.
SELECT 'table' AS kind, format('public.%I', t) AS object,
       to_regclass(format('%I.%I', $2::text, t)) IS NOT NULL AS taken
FROM unnest($1::text[]) AS t
WHERE to_regclass(format('public.%I', t)) IS NOT NULL
UNION ALL
SELECT 'function', format('public.%I(%s)', p.proname, pg_get_function_identity_arguments(p.oid)),
       EXISTS (SELECT 1 FROM pg_proc q
               WHERE q.pronamespace = $2::regnamespace AND q.proname = p.proname)
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND (p.proname = 'upsert_promotion_summary' OR p.proname LIKE 'seckill\_%')
