//! The PostgreSQL schema. The table `airlock_schema` records how many migrations were applied.
//!
//! Version 1 is the whole schema of SQLite version 2 (the two backends share columns and
//! meanings; only the types are PostgreSQL's).

/// Migration `i` brings the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: jobs, their events, attempts and outputs, runners.
    r#"
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY NOT NULL,
    name             TEXT NOT NULL,
    -- The spec exactly as submitted (JSON bytes).
    spec_json        BYTEA NOT NULL,
    profile          TEXT NOT NULL,
    -- JSON array of the labels a runner must carry.
    labels           TEXT NOT NULL,
    source_sha256    TEXT,
    state            TEXT NOT NULL,
    message          TEXT NOT NULL DEFAULT '',
    exit_code        INTEGER NOT NULL DEFAULT 0,
    attempt          BIGINT NOT NULL DEFAULT 0,
    runner_id        TEXT,
    lease_token      TEXT,
    -- Milliseconds since the Unix epoch.
    created_ms       BIGINT NOT NULL,
    leased_ms        BIGINT,
    started_ms       BIGINT,
    finished_ms      BIGINT,
    log_sha256       TEXT,
    envelope_json    TEXT,
    bundle_json      TEXT,
    builder_id       TEXT,
    keyid            TEXT,
    public_key_pem   TEXT,
    idempotency_key  TEXT,
    priority         INTEGER NOT NULL DEFAULT 0,
    -- Queue order: created_ms - priority * aging_ms (smallest first).
    queue_key        BIGINT NOT NULL DEFAULT 0,
    tenant           TEXT NOT NULL DEFAULT '',
    timeout_ms       BIGINT NOT NULL DEFAULT 0,
    max_attempts     BIGINT NOT NULL DEFAULT 1,
    not_before_ms    BIGINT NOT NULL DEFAULT 0,
    lease_expires_ms BIGINT,
    deadline_ms      BIGINT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE UNIQUE INDEX jobs_by_idempotency_key ON jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_by_queue ON jobs (state, queue_key);
CREATE INDEX jobs_by_tenant ON jobs (tenant, state);
CREATE INDEX jobs_leased ON jobs (lease_expires_ms) WHERE state IN ('LEASED', 'RUNNING');

CREATE TABLE job_events (
    job_id   TEXT NOT NULL REFERENCES jobs (id),
    seq      BIGINT NOT NULL,
    time_ms  BIGINT NOT NULL,
    -- 'state', 'step' or 'log'.
    kind     TEXT NOT NULL,
    -- An encoded airlock.v1.JobEvent.
    event    BYTEA NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE job_attempts (
    job_id      TEXT NOT NULL REFERENCES jobs (id),
    attempt     BIGINT NOT NULL,
    runner_id   TEXT NOT NULL,
    leased_ms   BIGINT NOT NULL,
    finished_ms BIGINT,
    -- NULL while live, then a job state name.
    state       TEXT,
    reason      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE outputs (
    job_id     TEXT NOT NULL REFERENCES jobs (id),
    attempt    BIGINT NOT NULL,
    path       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    size       BIGINT NOT NULL,
    executable BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (job_id, attempt, path)
);

CREATE TABLE runners (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    labels         TEXT NOT NULL,
    version        TEXT NOT NULL,
    registered_ms  BIGINT NOT NULL
);
"#,
    // 2: runner credentials: registrations (only the secret's sha256), short-lived runner
    // tokens (only their sha256), the registration each runner used, and the current
    // attempt's job token (sha256 and expiry) on the job row.
    r#"
CREATE TABLE runner_registrations (
    name           TEXT PRIMARY KEY NOT NULL,
    secret_sha256  TEXT NOT NULL,
    created_ms     BIGINT NOT NULL,
    revoked_ms     BIGINT
);
CREATE INDEX runner_registrations_by_secret ON runner_registrations (secret_sha256);

CREATE TABLE runner_tokens (
    token_sha256   TEXT PRIMARY KEY NOT NULL,
    runner_id      TEXT NOT NULL REFERENCES runners (id),
    registration   TEXT NOT NULL,
    expires_ms     BIGINT NOT NULL
);
CREATE INDEX runner_tokens_by_expiry ON runner_tokens (expires_ms);
CREATE INDEX runner_tokens_by_registration ON runner_tokens (registration);

ALTER TABLE runners ADD COLUMN registration TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN job_token_sha256 TEXT;
ALTER TABLE jobs ADD COLUMN job_token_expires_ms BIGINT;
"#,
    // 3: build caches (issue 16): one row per (scope, key), the archive in the blob store.
    r#"
CREATE TABLE build_caches (
    project        TEXT NOT NULL,
    domain         TEXT NOT NULL,
    name           TEXT NOT NULL,
    key_sha256     TEXT NOT NULL,
    archive_sha256 TEXT NOT NULL,
    size           BIGINT NOT NULL,
    created_ms     BIGINT NOT NULL,
    used_ms        BIGINT NOT NULL,
    PRIMARY KEY (project, domain, name, key_sha256)
);
CREATE INDEX build_caches_by_age ON build_caches (project, domain, name, created_ms);
"#,
    // 4: forge webhooks and the web UI (issue 18). `forge_status` says what the status
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
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL
);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_ms);
"#,
    // 5: SBOMs (issue 20), one row per job that has one (SUCCEEDED, or FAILED by its
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
    // 6: runtime traces (issue 21), one row per traced job with an SBOM, written in the
    // transaction that ends the job.
    r#"
CREATE TABLE job_traces (
    job_id        TEXT PRIMARY KEY NOT NULL,
    envelope_json TEXT NOT NULL,
    hermeticity   TEXT NOT NULL
);
"#,
];
