//! The schema's version against the migrations this binary carries: only `serve` and `migrate`
//! change it, and nothing runs on a schema newer than it knows (a rollback without the restore).

use sqlx::AssertSqlSafe;

use super::{Engine, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, Store, StoreError};

/// sqlx's table of applied migrations.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// The last migration applied to the database, and the last this binary carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersions {
    /// 0: no migration applied (a new, empty database).
    pub database: i64,
    pub binary: i64,
}

/// Why a command does not run on this database (the command line exits 2 for it).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database's schema is at version {database}, newer than this binary knows \
         ({binary}): run the release that migrated it, or restore the backup taken before \
         the upgrade (docs/operate.md)"
    )]
    Newer { database: i64, binary: i64 },
    #[error(
        "the database's schema is at version {database} and this binary's is {binary}: \
         run `server migrate` first (this command never changes the schema)"
    )]
    Older { database: i64, binary: i64 },
    #[error("a migration failed halfway (version {0}): restore the backup taken before it")]
    Dirty(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.engine {
            Engine::Sqlite => &SQLITE_MIGRATIONS,
            Engine::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// The database's schema version against this binary's; reads only.
    pub async fn schema_versions(&self) -> Result<SchemaVersions, SchemaError> {
        let binary = self
            .migrator()
            .iter()
            .map(|migration| migration.version)
            .max()
            .unwrap_or(0);
        let exists = match self.engine {
            Engine::Sqlite => format!(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = \
                 '{MIGRATIONS_TABLE}'"
            ),
            Engine::Postgres => format!(
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '{MIGRATIONS_TABLE}'"
            ),
        };
        let (tables,): (i64,) = sqlx::query_as(AssertSqlSafe(exists))
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::from)?;
        if tables == 0 {
            return Ok(SchemaVersions {
                database: 0,
                binary,
            });
        }
        let dirty: Option<(i64,)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT version FROM {MIGRATIONS_TABLE} WHERE NOT success ORDER BY version LIMIT 1"
        )))
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::from)?;
        if let Some((version,)) = dirty {
            return Err(SchemaError::Dirty(version));
        }
        let (database,): (Option<i64>,) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT MAX(version) FROM {MIGRATIONS_TABLE}"
        )))
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::from)?;
        Ok(SchemaVersions {
            database: database.unwrap_or(0),
            binary,
        })
    }

    /// For a command that only reads or changes rows: the schema must be exactly this binary's.
    pub async fn require_current_schema(&self) -> Result<(), SchemaError> {
        let versions = self.schema_versions().await?;
        if versions.database > versions.binary {
            Err(SchemaError::Newer {
                database: versions.database,
                binary: versions.binary,
            })
        } else if versions.database < versions.binary {
            Err(SchemaError::Older {
                database: versions.database,
                binary: versions.binary,
            })
        } else {
            Ok(())
        }
    }

    /// For `serve` and `migrate`: applies what this binary adds, but refuses a newer schema
    /// (an older binary must not run on tables it does not know). Returns the migrations
    /// applied.
    pub async fn migrate_to_current(&self) -> Result<i64, SchemaError> {
        let versions = self.schema_versions().await?;
        if versions.database > versions.binary {
            return Err(SchemaError::Newer {
                database: versions.database,
                binary: versions.binary,
            });
        }
        self.migrate().await?;
        let applied = self
            .migrator()
            .iter()
            .filter(|migration| migration.version > versions.database)
            .count();
        Ok(i64::try_from(applied).unwrap_or(i64::MAX))
    }
}
