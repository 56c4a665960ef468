//! The SQLite schema. `PRAGMA user_version` records how many migrations a database has had.

/// Migration `i` brings the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: jobs, their events and outputs, runners.
    r#"
CREATE TABLE jobs (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    -- The spec exactly as submitted (JSON bytes).
    spec_json      BLOB NOT NULL,
    profile        TEXT NOT NULL,
    -- JSON array of the labels a runner must carry.
    labels         TEXT NOT NULL,
    source_sha256  TEXT,
    state          TEXT NOT NULL,
    message        TEXT NOT NULL DEFAULT '',
    exit_code      INTEGER NOT NULL DEFAULT 0,
    attempt        INTEGER NOT NULL DEFAULT 0,
    runner_id      TEXT,
    lease_token    TEXT,
    -- Milliseconds since the Unix epoch.
    created_ms     INTEGER NOT NULL,
    leased_ms      INTEGER,
    started_ms     INTEGER,
    finished_ms    INTEGER,
    log_sha256     TEXT,
    envelope_json  TEXT,
    bundle_json    TEXT,
    builder_id     TEXT,
    keyid          TEXT,
    public_key_pem TEXT
);
CREATE INDEX jobs_by_state ON jobs (state, created_ms);

CREATE TABLE job_events (
    job_id   TEXT NOT NULL REFERENCES jobs (id),
    seq      INTEGER NOT NULL,
    time_ms  INTEGER NOT NULL,
    -- 'state', 'step' or 'log'.
    kind     TEXT NOT NULL,
    -- An encoded airlock.v1.JobEvent.
    event    BLOB NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

CREATE TABLE outputs (
    job_id   TEXT NOT NULL REFERENCES jobs (id),
    attempt  INTEGER NOT NULL,
    path     TEXT NOT NULL,
    sha256   TEXT NOT NULL,
    size     INTEGER NOT NULL,
    -- 1 when the file had an execute bit in /out.
    executable INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, attempt, path)
) WITHOUT ROWID;

CREATE TABLE runners (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    labels         TEXT NOT NULL,
    version        TEXT NOT NULL,
    registered_ms  INTEGER NOT NULL
);
"#,
    // 2: fleet: idempotency keys, priorities with aging, leases that expire, deadlines,
    // retries with backoff, cancel requests, per-tenant limits, and a row per attempt.
    r#"
ALTER TABLE jobs ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX jobs_by_idempotency_key ON jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
-- Queue order: created_ms - priority * aging_ms (smallest first). See docs/operations.md.
ALTER TABLE jobs ADD COLUMN queue_key INTEGER NOT NULL DEFAULT 0;
-- Who shares a concurrency limit: the source repository (or the job name for path sources).
ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN timeout_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 1;
-- A re-queued job is not leased before this time (retry backoff).
ALTER TABLE jobs ADD COLUMN not_before_ms INTEGER NOT NULL DEFAULT 0;
-- While leased: when the lease lapses unless renewed, and when the attempt times out.
ALTER TABLE jobs ADD COLUMN lease_expires_ms INTEGER;
ALTER TABLE jobs ADD COLUMN deadline_ms INTEGER;
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET queue_key = created_ms;
DROP INDEX jobs_by_state;
CREATE INDEX jobs_by_queue ON jobs (state, queue_key);
CREATE INDEX jobs_by_tenant ON jobs (tenant, state);

CREATE TABLE job_attempts (
    job_id      TEXT NOT NULL REFERENCES jobs (id),
    attempt     INTEGER NOT NULL,
    runner_id   TEXT NOT NULL,
    leased_ms   INTEGER NOT NULL,
    finished_ms INTEGER,
    -- NULL while live, then a job state name.
    state       TEXT,
    reason      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;
"#,
    // 3: runner credentials: registrations (only the secret's sha256), short-lived runner
    // tokens (only their sha256), the registration each runner used, and the current
    // attempt's job token (sha256 and expiry) on the job row.
    r#"
CREATE TABLE runner_registrations (
    name           TEXT PRIMARY KEY NOT NULL,
    secret_sha256  TEXT NOT NULL,
    created_ms     INTEGER NOT NULL,
    revoked_ms     INTEGER
) WITHOUT ROWID;
CREATE INDEX runner_registrations_by_secret ON runner_registrations (secret_sha256);

CREATE TABLE runner_tokens (
    token_sha256   TEXT PRIMARY KEY NOT NULL,
    runner_id      TEXT NOT NULL REFERENCES runners (id),
    registration   TEXT NOT NULL,
    expires_ms     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX runner_tokens_by_expiry ON runner_tokens (expires_ms);
CREATE INDEX runner_tokens_by_registration ON runner_tokens (registration);

ALTER TABLE runners ADD COLUMN registration TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN job_token_sha256 TEXT;
ALTER TABLE jobs ADD COLUMN job_token_expires_ms INTEGER;
"#,
    // 4: build caches (issue 16): one row per (scope, key), the archive in the blob store.
    r#"
CREATE TABLE build_caches (
    project        TEXT NOT NULL,
    domain         TEXT NOT NULL,
    name           TEXT NOT NULL,
    key_sha256     TEXT NOT NULL,
    archive_sha256 TEXT NOT NULL,
    size           INTEGER NOT NULL,
    created_ms     INTEGER NOT NULL,
    used_ms        INTEGER NOT NULL,
    PRIMARY KEY (project, domain, name, key_sha256)
);
CREATE INDEX build_caches_by_age ON build_caches (project, domain, name, created_ms);
"#,
    // 5: forge webhooks and the web UI (issue 18). `forge_status` says what the status
    // reporter still owes the forge: 'queued' (post pending), 'pending' (post the final state
    // once the job ends), 'done'; NULL for jobs no forge queued. `admission_json` is the
    // admission policy's record, `signer_keyid` the key that signed the spec (issue 19). Web sessions keep only the sha256 of the cookie.
    r#"
ALTER TABLE jobs ADD COLUMN forge_status TEXT;
ALTER TABLE jobs ADD COLUMN admission_json TEXT;
ALTER TABLE jobs ADD COLUMN signer_keyid TEXT;
CREATE INDEX jobs_by_forge_status ON jobs (forge_status) WHERE forge_status IN ('queued', 'pending');
-- The queue page lists jobs newest first.
CREATE INDEX jobs_by_created ON jobs (created_ms);

CREATE TABLE web_sessions (
    id_sha256   TEXT PRIMARY KEY NOT NULL,
    client      TEXT NOT NULL,
    csrf_token  TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_ms);
"#,
    // 6: SBOMs (issue 20), one row per job that has one (SUCCEEDED, or FAILED by its
    // profile's vulnerability gate), written in the transaction that ends the job. A table of
    // its own: the documents can be large, and job listings never read them.
    r#"
CREATE TABLE job_sboms (
    job_id         TEXT PRIMARY KEY NOT NULL,
    spdx_json      TEXT NOT NULL,
    cyclonedx_json TEXT NOT NULL,
    envelope_json  TEXT NOT NULL,
    keyid          TEXT NOT NULL,
    public_key_pem TEXT NOT NULL
);
"#,
    // 7: runtime traces (issue 21), one row per traced job with an SBOM, written in the
    // transaction that ends the job.
    r#"
CREATE TABLE job_traces (
    job_id        TEXT PRIMARY KEY NOT NULL,
    envelope_json TEXT NOT NULL,
    hermeticity   TEXT NOT NULL
);
"#,
];
