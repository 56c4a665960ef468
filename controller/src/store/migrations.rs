//! The database schema, as SQL migrations applied in order at startup.
//!
//! `PRAGMA user_version` records how many migrations a database has had. Migrations are only
//! ever appended: a released migration is never edited.

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
];
