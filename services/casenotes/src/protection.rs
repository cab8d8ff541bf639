//! The seam between the handlers and what protects client data: the key store with its
//! AES-256-GCM sealing, and the audit log. The service always builds the real ones from its
//! settings; [`Protection::unprotected`] exists only so `make bench` can measure what
//! protection costs, passed to `App::build` in the settings value (it has no config key).

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    audit_log::{AuditLog, AuditLogError, Record},
    crypto::{Cell, CryptoError, DataKey, Keyring},
    keystore::{self, KeystoreError},
};

/// What seals a client's cells: its data key, or nothing at all (the benchmark's baseline).
#[derive(Debug)]
pub enum Sealer {
    Key(DataKey),
    Clear,
}

impl Sealer {
    pub fn seal(&self, cell: Cell<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match self {
            Self::Key(key) => key.seal(cell, plaintext),
            Self::Clear => Ok(plaintext.to_vec()),
        }
    }

    pub fn open(&self, cell: Cell<'_>, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match self {
            Self::Key(key) => key.open(cell, sealed),
            Self::Clear => Ok(sealed.to_vec()),
        }
    }
}

/// Where a client's data key comes from.
#[async_trait::async_trait]
pub trait KeySource: Send + Sync + std::fmt::Debug {
    /// A new client's key, stored before the client is.
    async fn create(&self, client_id: &str) -> Result<Sealer, KeystoreError>;
    /// The client's key, or `None` once destroyed (erased).
    async fn load(&self, client_id: &str) -> Result<Option<Sealer>, KeystoreError>;
}

/// The key store, its keys wrapped by the KEKs of the keyring.
#[derive(Debug)]
pub struct Keystore {
    pub db: DatabaseConnection,
    pub keyring: Arc<Keyring>,
}

#[async_trait::async_trait]
impl KeySource for Keystore {
    async fn create(&self, client_id: &str) -> Result<Sealer, KeystoreError> {
        keystore::create(&self.db, &self.keyring, client_id)
            .await
            .map(Sealer::Key)
    }

    async fn load(&self, client_id: &str) -> Result<Option<Sealer>, KeystoreError> {
        Ok(keystore::load(&self.db, &self.keyring, client_id)
            .await?
            .map(Sealer::Key))
    }
}

/// Where audit entries go.
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// Returns once the entries are durable.
    async fn append(&self, records: Vec<Record>) -> Result<(), AuditLogError>;
}

#[async_trait::async_trait]
impl AuditSink for AuditLog {
    async fn append(&self, records: Vec<Record>) -> Result<(), AuditLogError> {
        AuditLog::append(self, records).await
    }
}

/// Stores in the clear and audits nothing: the benchmark's unprotected baseline only.
#[derive(Debug)]
pub struct Nothing;

#[async_trait::async_trait]
impl KeySource for Nothing {
    async fn create(&self, _client_id: &str) -> Result<Sealer, KeystoreError> {
        Ok(Sealer::Clear)
    }

    async fn load(&self, _client_id: &str) -> Result<Option<Sealer>, KeystoreError> {
        Ok(Some(Sealer::Clear))
    }
}

#[async_trait::async_trait]
impl AuditSink for Nothing {
    async fn append(&self, _records: Vec<Record>) -> Result<(), AuditLogError> {
        Ok(())
    }
}

/// Replacements for the real key source and audit sink; `None` (the default, and the only
/// value configuration can give) means the real ones.
#[derive(Debug, Clone, Default)]
pub struct Protection {
    pub keys: Option<Arc<dyn KeySource>>,
    pub audit: Option<Arc<dyn AuditSink>>,
}

impl Protection {
    /// No encryption and no audit: for measuring their cost, never for serving.
    pub fn unprotected() -> Self {
        Self {
            keys: Some(Arc::new(Nothing)),
            audit: Some(Arc::new(Nothing)),
        }
    }
}
