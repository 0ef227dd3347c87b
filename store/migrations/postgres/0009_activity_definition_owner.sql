-- 0009: the application that owns an ActivityDefinition (issue 16 item 1). The
-- definition is visible outside the domain it was created in only when it
-- names its owner (application = owner_application) and is not domain
-- specific; only the owner's instances may change it. Owner of an existing
-- definition: the application of the instance that created it, or — seeded
-- from the configuration — the application it names. Definitions that named
-- another application than their creator's stop being visible elsewhere.
ALTER TABLE activity_definitions ADD COLUMN owner_application TEXT NOT NULL DEFAULT '';
UPDATE activity_definitions SET owner_application = COALESCE(
    (SELECT a.ident FROM app_instances i JOIN applications a ON a.id = i.application_id
     WHERE i.id = activity_definitions.created_by), application);
CREATE INDEX activity_definitions_owner ON activity_definitions (owner_application);
