-- 0011: the Storage Service (SPEC.md §9): state that browser modules without a
-- back end keep per patient. An item belongs to one application instance (so
-- to one domain and one application) and one patient; only that instance sees
-- it. object_key is unique per instance, patient and object_type when set.
CREATE TABLE storage_items (
    id           INTEGER PRIMARY KEY AUTOINCREMENT, -- <id> in Other/StorageItem:<id> and Binary/<id>
    domain_id    BIGINT  NOT NULL REFERENCES domains(id),
    instance_id  BIGINT  NOT NULL REFERENCES app_instances(id),
    patient_ref  TEXT    NOT NULL,          -- the patient URL (unversioned)
    object_type  TEXT    NOT NULL DEFAULT '',
    object_key   TEXT    NOT NULL DEFAULT '',
    content_type TEXT    NOT NULL,
    content      BLOB    NOT NULL,
    size         BIGINT  NOT NULL,          -- bytes of content (quota)
    version      TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE UNIQUE INDEX storage_items_key ON storage_items (instance_id, patient_ref, object_type, object_key)
    WHERE object_key <> '';
CREATE INDEX storage_items_patient ON storage_items (instance_id, patient_ref, updated_at);
CREATE INDEX storage_items_updated ON storage_items (updated_at);
