-- An application's own first migration, numbered like SecKill's first: the
-- issue's collision ("migration 1 was previously applied but has been
-- modified") when both shared one `_sqlx_migrations`.
CREATE TABLE customers (id text PRIMARY KEY, name text NOT NULL);
