//! Numbered schema migrations, applied in one transaction at open.

use rusqlite::Connection;

use crate::OpenError;

/// How long a write waits for another connection's lock (a backup, a second
/// process) before it fails.
pub(crate) const BUSY_TIMEOUT_MS: u64 = 5_000;

/// Sets a store's connection up the way every Tandem store runs, then
/// brings its schema up to date: WAL, so readers run beside the writer;
/// `synchronous=FULL`, so a committed operation survives a power cut (the
/// device's outbox and the relay's acknowledgements rely on it); foreign
/// keys on.
pub(crate) fn open_durable(
    conn: &mut Connection,
    migrations: &[Migration],
) -> Result<(), OpenError> {
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
        .map_err(OpenError::Sqlite)?;
    for (pragma, value) in [
        ("journal_mode", "WAL"),
        ("synchronous", "FULL"),
        ("foreign_keys", "ON"),
    ] {
        conn.pragma_update(None, pragma, value)
            .map_err(OpenError::Sqlite)?;
    }
    apply(conn, migrations)
}

/// One schema step: `version` is its number, starting at 1, with no gaps.
pub(crate) struct Migration {
    pub version: u32,
    pub sql: &'static str,
}

/// Brings `conn` up to the last migration. The schema version lives in
/// `PRAGMA user_version`; a version above the last known one is refused.
pub(crate) fn apply(conn: &mut Connection, migrations: &[Migration]) -> Result<(), OpenError> {
    debug_assert!(migrations
        .iter()
        .enumerate()
        .all(|(i, m)| m.version as usize == i + 1));
    let known = migrations.len() as u32;
    let tx = conn.transaction().map_err(OpenError::Sqlite)?;
    let found: u32 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(OpenError::Sqlite)?;
    if found > known {
        return Err(OpenError::SchemaTooNew { found, known });
    }
    for migration in &migrations[found as usize..] {
        tx.execute_batch(migration.sql)
            .map_err(|source| OpenError::Migration {
                version: migration.version,
                source,
            })?;
        tx.pragma_update(None, "user_version", migration.version)
            .map_err(OpenError::Sqlite)?;
    }
    tx.commit().map_err(OpenError::Sqlite)?;
    Ok(())
}
