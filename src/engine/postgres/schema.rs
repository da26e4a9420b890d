//! The database schema (`runner.*`), versioned: `runner postgres migrate` applies the
//! migrations a database lacks, idempotently and one at a time; every other command checks
//! the version first and refuses a schema that is older (run `migrate`) or newer (upgrade
//! runner) than this binary's.

use crate::engine::postgres::client::Conn;
use crate::engine::postgres::error::PgError;

/// Migration N (1-based) brings the schema from version N-1 to N. Append only: a released
/// migration is never edited.
const MIGRATIONS: &[&str] = &[V1];

const V1: &str = r#"
CREATE SEQUENCE runner.fence;
CREATE TABLE runner.jobs (
    id bigserial PRIMARY KEY,
    key text NOT NULL UNIQUE,
    job_id text NOT NULL,
    spec json NOT NULL,
    spec_version integer NOT NULL DEFAULT 1,
    state text NOT NULL,
    coordinator text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE runner.items (
    job bigint NOT NULL REFERENCES runner.jobs (id) ON DELETE CASCADE,
    idx integer NOT NULL,
    item_id text NOT NULL,
    item json NOT NULL,
    attempt integer NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    status text NOT NULL,
    available_at timestamptz NOT NULL DEFAULT now(),
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    worker bigint,
    fence bigint,
    claimed_at timestamptz,
    lease_until timestamptz,
    outcome json,
    stdout bytea,
    stderr bytea,
    PRIMARY KEY (job, idx)
);
CREATE INDEX items_ready ON runner.items (priority DESC, available_at, job, idx) WHERE status = 'ready';
CREATE INDEX items_claimed ON runner.items (job, lease_until) WHERE status = 'claimed';
CREATE INDEX items_done ON runner.items (job) WHERE status = 'done';
CREATE TABLE runner.workers (
    id bigserial PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    slots integer NOT NULL,
    busy integer NOT NULL DEFAULT 0,
    lease_ms bigint NOT NULL,
    heartbeat_ms bigint NOT NULL,
    version text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
"#;

/// Serializes concurrent `migrate` runs (an arbitrary constant: "runner" in ASCII).
const MIGRATE_LOCK: i64 = 0x72_75_6e_6e_65_72;

/// The schema version this binary needs.
pub fn latest() -> i32 {
    MIGRATIONS.len() as i32
}

/// Whether a database at `found` (None: no schema yet) fits this binary.
pub fn fit(found: Option<i32>) -> Result<(), PgError> {
    let need = latest();
    match found {
        Some(v) if v == need => Ok(()),
        Some(v) if v > need => Err(PgError::Schema(format!(
            "the PostgreSQL schema is at version {v}, newer than this runner knows ({need}); \
             upgrade runner on this machine"
        ))),
        Some(v) => Err(PgError::Schema(format!(
            "the PostgreSQL schema is at version {v}; this runner needs version {need}: \
             run `runner postgres migrate`"
        ))),
        None => Err(PgError::Schema(format!(
            "the database has no runner schema yet; run `runner postgres migrate` \
             (creates schema version {need})"
        ))),
    }
}

/// The database's schema version, if it has one.
pub async fn version(conn: &Conn) -> Result<Option<i32>, PgError> {
    let row = conn
        .query_opt(
            "SELECT to_regclass('runner.schema_version') IS NOT NULL",
            &[],
            "read the schema version",
        )
        .await?;
    if !row.is_some_and(|r| r.get::<_, bool>(0)) {
        return Ok(None);
    }
    let row = conn
        .query_opt(
            "SELECT max(version) FROM runner.schema_version",
            &[],
            "read the schema version",
        )
        .await?;
    Ok(row.and_then(|r| r.get::<_, Option<i32>>(0)))
}

/// Refuse a database whose schema does not fit.
pub async fn check(conn: &Conn) -> Result<(), PgError> {
    fit(version(conn).await?)
}

/// What `migrate` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub from: i32,
    pub to: i32,
}

/// Apply the missing migrations, each in its own transaction, under an advisory lock.
pub async fn migrate(conn: &Conn) -> Result<Migrated, PgError> {
    conn.query(
        "SELECT pg_advisory_lock($1)",
        &[&MIGRATE_LOCK],
        "lock the schema",
    )
    .await?;
    let result = migrate_locked(conn).await;
    let _ = conn
        .query("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK], "unlock")
        .await;
    result
}

async fn migrate_locked(conn: &Conn) -> Result<Migrated, PgError> {
    conn.batch(
        "BEGIN;
         CREATE SCHEMA IF NOT EXISTS runner;
         CREATE TABLE IF NOT EXISTS runner.schema_version (version integer NOT NULL);
         INSERT INTO runner.schema_version
             SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM runner.schema_version);
         COMMIT;",
        "create the runner schema",
    )
    .await?;
    let from = version(conn).await?.unwrap_or(0);
    if from > latest() {
        fit(Some(from))?;
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        let to = i as i32 + 1;
        conn.batch(
            &format!("BEGIN;\n{sql}\nUPDATE runner.schema_version SET version = {to};\nCOMMIT;"),
            &format!("apply schema migration {to}"),
        )
        .await?;
    }
    Ok(Migrated {
        from,
        to: latest().max(from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_current_version_fits() {
        let need = latest();
        assert!(fit(Some(need)).is_ok());
        let old = fit(Some(need - 1)).unwrap_err().to_string();
        assert!(old.contains("runner postgres migrate"), "{old}");
        let none = fit(None).unwrap_err().to_string();
        assert!(none.contains("runner postgres migrate"), "{none}");
        let new = fit(Some(need + 1)).unwrap_err().to_string();
        assert!(new.contains("upgrade runner"), "{new}");
        assert!(!new.contains("migrate"), "{new}");
    }

    #[test]
    fn migrations_are_numbered_from_one() {
        assert_eq!(latest(), MIGRATIONS.len() as i32);
        assert!(latest() >= 1);
        for m in MIGRATIONS {
            assert!(!m.contains("BEGIN") && !m.contains("COMMIT"), "{m}");
        }
    }
}
