-- 0020: the HTTP request log (the old IntegrationMessageLogs, SPEC.md §10.1/§11):
-- one row per request, written in batches off the request path (package httplog).
-- No headers; the query with secret values replaced; bodies only when configured.
-- Removed by the retention job after 7 days (successful) or 14 days (failed).
CREATE TABLE http_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            BIGINT  NOT NULL,            -- request start, Unix µs
    method        TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    query         TEXT    NOT NULL DEFAULT '', -- secret values replaced
    caller_kind   TEXT    NOT NULL DEFAULT '', -- instance, bearer, client, admin; '' when unauthenticated
    caller        TEXT    NOT NULL DEFAULT '', -- instance user name, OAuth client or administrator
    domain        TEXT    NOT NULL DEFAULT '',
    status        INTEGER NOT NULL,
    duration_us   BIGINT  NOT NULL,
    request_id    TEXT    NOT NULL DEFAULT '',
    source_ip     TEXT    NOT NULL DEFAULT '',
    request_body  BLOB,                        -- only with http_log.bodies
    response_body BLOB
);
-- Newest first, keyset-paged on (at, id): by time, by caller, failed calls only, one request id.
CREATE INDEX http_log_at ON http_log (at, id);
CREATE INDEX http_log_caller ON http_log (caller, at, id);
CREATE INDEX http_log_failed ON http_log (at, id) WHERE status >= 400;
CREATE INDEX http_log_request ON http_log (request_id);
