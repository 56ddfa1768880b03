-- The default account every admin call without accountId acts on (contract §9).
-- md5 of a random UUID gives 22 uniformly random hex chars from PostgreSQL's CSPRNG.
INSERT INTO "accounts" ("id", "name", "is_default")
SELECT substr(md5(gen_random_uuid()::text), 1, 22), 'Default', true
WHERE NOT EXISTS (SELECT 1 FROM "accounts" WHERE "is_default");
