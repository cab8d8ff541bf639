//! The key store: each client's data key, wrapped by the key-encryption key, in a
//! database of its own (its own SQLite file, or its own PostgreSQL database or schema).
//!
//! Kept apart so operators back it up on a short rotation (35 days by default): once the
//! last backup holding a destroyed key ages out, no copy of that client's ciphertext, in
//! any backup of the main store, can be read again.

use sea_orm::{ConnectionTrait, DbErr, Statement};
use sea_orm_migration::prelude::*;

use crate::crypto::{CryptoError, DataKey, Keyring};

#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("key store: {0}")]
    Store(#[from] DbErr),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("client {0} already has a data key")]
    Exists(String),
}

/// The key store's schema, migrated on its own connection.
#[derive(Debug)]
pub struct KeystoreMigrator;

impl MigratorTrait for KeystoreMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateDataKeys), Box::new(CreateKeyTombstones)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("keystore_migrations").into_iden()
    }
}

#[derive(DeriveIden)]
enum DataKeys {
    Table,
    ClientId,
    KekId,
    Wrapped,
}

struct CreateDataKeys;

impl MigrationName for CreateDataKeys {
    fn name(&self) -> &str {
        "m20261123_003001_keystore_data_keys"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateDataKeys {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DataKeys::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(DataKeys::ClientId)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(DataKeys::KekId).string().not_null())
                    .col(ColumnDef::new(DataKeys::Wrapped).binary().not_null())
                    .to_owned(),
            )
            .await
    }
}

fn statement(connection: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(connection.get_database_backend(), sql, values)
}

/// The erased clients the key store knows of, so a restored main store learns of
/// erasures it missed (and a restored key store of its own, from the main store's).
struct CreateKeyTombstones;

impl MigrationName for CreateKeyTombstones {
    fn name(&self) -> &str {
        "m20261124_003003_keystore_tombstones"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateKeyTombstones {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE IF NOT EXISTS key_tombstones (client_id TEXT PRIMARY KEY, \
                 erased_at BIGINT NOT NULL)",
            )
            .await
            .map(|_| ())
    }
}

/// Makes, wraps and stores a new client's data key.
pub async fn create(
    connection: &impl ConnectionTrait,
    keyring: &Keyring,
    client_id: &str,
) -> Result<DataKey, KeystoreError> {
    let key = DataKey::generate();
    let (kek_id, wrapped) = keyring.wrap(client_id, &key)?;
    let inserted = connection
        .execute_raw(statement(
            connection,
            "INSERT INTO data_keys (client_id, kek_id, wrapped) VALUES ($1, $2, $3) \
             ON CONFLICT (client_id) DO NOTHING",
            vec![client_id.into(), kek_id.into(), wrapped.into()],
        ))
        .await?;
    if inserted.rows_affected() == 0 {
        return Err(KeystoreError::Exists(client_id.to_owned()));
    }
    Ok(key)
}

/// The client's data key, or `None` once it has been destroyed.
pub async fn load(
    connection: &impl ConnectionTrait,
    keyring: &Keyring,
    client_id: &str,
) -> Result<Option<DataKey>, KeystoreError> {
    let row = connection
        .query_one_raw(statement(
            connection,
            "SELECT kek_id, wrapped FROM data_keys WHERE client_id = $1",
            vec![client_id.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (kek_id, wrapped): (String, Vec<u8>) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
    Ok(Some(keyring.unwrap(client_id, &kek_id, &wrapped)?))
}

/// Destroys the client's data key (erasure) and keeps its tombstone; answers whether
/// there was a key. Run it in a transaction: both or neither.
pub async fn destroy(
    connection: &impl ConnectionTrait,
    client_id: &str,
    erased_at_micros: i64,
) -> Result<bool, KeystoreError> {
    connection
        .execute_raw(statement(
            connection,
            "INSERT INTO key_tombstones (client_id, erased_at) VALUES ($1, $2) \
             ON CONFLICT (client_id) DO NOTHING",
            vec![client_id.into(), erased_at_micros.into()],
        ))
        .await?;
    let deleted = connection
        .execute_raw(statement(
            connection,
            "DELETE FROM data_keys WHERE client_id = $1",
            vec![client_id.into()],
        ))
        .await?;
    Ok(deleted.rows_affected() > 0)
}

/// Every (client id, erased at) the key store holds a tombstone for.
pub async fn tombstones(
    connection: &impl ConnectionTrait,
) -> Result<Vec<(String, i64)>, KeystoreError> {
    let rows = connection
        .query_all_raw(statement(
            connection,
            "SELECT client_id, erased_at FROM key_tombstones ORDER BY client_id",
            Vec::new(),
        ))
        .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .collect()
}

/// Re-wraps every data key not wrapped by the current KEK; answers how many. After it,
/// the previous KEK can be retired.
pub async fn rewrap_all(
    connection: &impl ConnectionTrait,
    keyring: &Keyring,
) -> Result<usize, KeystoreError> {
    let rows = connection
        .query_all_raw(statement(
            connection,
            "SELECT client_id, kek_id, wrapped FROM data_keys ORDER BY client_id",
            Vec::new(),
        ))
        .await?;
    let mut rewrapped = 0;
    for row in rows {
        let (client_id, kek_id, wrapped): (String, String, Vec<u8>) = (
            row.try_get_by_index(0)?,
            row.try_get_by_index(1)?,
            row.try_get_by_index(2)?,
        );
        if let Some((new_kek, new_wrapped)) = keyring.rewrap(&client_id, &kek_id, &wrapped)? {
            // Only if untouched since read: a concurrent rotation or erasure wins.
            connection
                .execute_raw(statement(
                    connection,
                    "UPDATE data_keys SET kek_id = $1, wrapped = $2 \
                     WHERE client_id = $3 AND kek_id = $4",
                    vec![
                        new_kek.into(),
                        new_wrapped.into(),
                        client_id.into(),
                        kek_id.into(),
                    ],
                ))
                .await?;
            rewrapped += 1;
        }
    }
    Ok(rewrapped)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use sea_orm::Database;

    use super::*;
    use crate::crypto::{Cell, Kek};

    const NOTE: Cell<'static> = Cell {
        table: "notes",
        row: "note-1",
        column: "text",
    };

    fn kek(id: &str, byte: u8) -> Kek {
        Kek::from_base64(
            id,
            &base64::engine::general_purpose::STANDARD.encode([byte; 32]),
        )
        .unwrap()
    }

    async fn keys_are_made_read_rotated_and_destroyed(url: &str) -> anyhow::Result<()> {
        let db = Database::connect(url).await?;
        KeystoreMigrator::up(&db, None).await?;
        let first = Keyring::new(kek("kek-1", 1), Vec::new());
        let key = create(&db, &first, "client-1").await?;
        create(&db, &first, "client-2").await?;
        assert!(matches!(
            create(&db, &first, "client-1").await,
            Err(KeystoreError::Exists(_))
        ));
        let sealed = key.seal(NOTE, b"wants to be a vet")?;
        let loaded = load(&db, &first, "client-1").await?.expect("stored");
        assert_eq!(loaded.open(NOTE, &sealed)?, b"wants to be a vet");

        // Rotation: re-wrap under kek-2, then kek-1 can go.
        let rotating = Keyring::new(kek("kek-2", 2), vec![kek("kek-1", 1)]);
        assert_eq!(rewrap_all(&db, &rotating).await?, 2);
        assert_eq!(rewrap_all(&db, &rotating).await?, 0);
        let second = Keyring::new(kek("kek-2", 2), Vec::new());
        let loaded = load(&db, &second, "client-1").await?.expect("stored");
        assert_eq!(loaded.open(NOTE, &sealed)?, b"wants to be a vet");

        // Erasure: the key is gone, and with it every copy of the ciphertext.
        assert!(destroy(&db, "client-1", 1).await?);
        assert!(!destroy(&db, "client-1", 1).await?);
        assert!(load(&db, &second, "client-1").await?.is_none());
        assert!(load(&db, &second, "client-2").await?.is_some());
        assert_eq!(tombstones(&db).await?, vec![("client-1".to_owned(), 1)]);
        Ok(())
    }

    #[tokio::test]
    async fn keys_are_made_read_rotated_and_destroyed_on_sqlite() -> anyhow::Result<()> {
        let database = careers_testkit::sqlite::TestSqlite::new()?;
        keys_are_made_read_rotated_and_destroyed(&database.url).await
    }

    #[tokio::test]
    async fn keys_are_made_read_rotated_and_destroyed_on_postgres() -> anyhow::Result<()> {
        let database = careers_testkit::postgres::empty_database().await?;
        keys_are_made_read_rotated_and_destroyed(&database.url).await
    }
}
