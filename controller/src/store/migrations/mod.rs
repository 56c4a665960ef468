//! The schema of each backend, as SQL migrations applied in order at startup. Both schemas
//! have the same tables, columns and meanings; only the column types are each database's.
//! Migrations are only ever appended: a released migration is never edited.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use super::StoreError;

/// The migrations a database at schema `version` still needs, each with the version it
/// brings the database to; [`StoreError::SchemaTooNew`] when a newer controller wrote it.
pub(crate) fn pending(
    version: i64,
    migrations: &'static [&'static str],
) -> Result<impl Iterator<Item = (i64, &'static str)>, StoreError> {
    let known = migrations.len();
    let current = usize::try_from(version).unwrap_or(usize::MAX);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: version,
            known,
        });
    }
    Ok(migrations
        .iter()
        .enumerate()
        .skip(current)
        .map(|(i, sql)| (i64::try_from(i + 1).unwrap_or(i64::MAX), *sql)))
}
