-- What a pooled connection resolves unqualified names to, and its
-- statement_timeout in milliseconds (0: no limit), to check a pool against
-- the options that describe it. `current_schema()` is the first schema on
-- `search_path` that exists, NULL when none does.
SELECT current_schema(), setting::bigint FROM pg_settings WHERE name = 'statement_timeout'
