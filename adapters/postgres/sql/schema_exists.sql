-- Whether schema $1 exists. Asked before CREATE SCHEMA, so a role without
-- CREATE on the database can use a schema an administrator made for it.
SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)
