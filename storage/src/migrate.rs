//! Numbered schema migrations, applied in one transaction at open.

use rusqlite::Connection;

use crate::OpenError;

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
