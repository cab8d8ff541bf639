//! API keys for read-only open data (occupations, published LMI), sent as `X-API-Key`.
//!
//! The file holds each key's SHA-256, never the key, and the key's own rate limit. The
//! gateway re-reads it when its modification time or size changes, so keys are issued and
//! revoked without a restart; `careersctl apikey create|revoke` edits it. A plain hash is
//! enough: keys are 256 random bits, not passwords.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
    time::SystemTime,
};

use base64::Engine;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Every key starts with this, so a leaked one is easy to recognise in logs and scanners.
pub const PREFIX: &str = "ck_";

/// Why the key file could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("API key file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("no API key with id {0:?}")]
    Unknown(String),
    #[error("rate_per_minute must be at least 1")]
    ZeroRate,
}

/// The file's shape.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub keys: Vec<KeyEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub id: String,
    /// Who holds it, for the operator.
    pub name: String,
    /// Lowercase hex SHA-256 of the whole key.
    pub sha256: String,
    pub rate_per_minute: u32,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// Lowercase hex SHA-256 of a key.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl KeyFile {
    /// The file, or no keys when it does not exist.
    pub fn read(path: &Path) -> Result<Self, ApiKeyError> {
        let fail = |reason: String| ApiKeyError::File {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|error| fail(error.to_string())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(fail(error.to_string())),
        }
    }

    /// Writes the file whole (a temporary file renamed over it), readable by its owner only.
    pub fn write(&self, path: &Path) -> Result<(), ApiKeyError> {
        let fail = |reason: String| ApiKeyError::File {
            path: path.display().to_string(),
            reason,
        };
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| fail(error.to_string()))?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|error| fail(error.to_string()))?;
        let temporary = path.with_extension("json.tmp");
        std::fs::write(&temporary, text + "\n").map_err(|error| fail(error.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
                .map_err(|error| fail(error.to_string()))?;
        }
        std::fs::rename(&temporary, path).map_err(|error| fail(error.to_string()))
    }

    /// Adds a new key; the key itself is returned once and stored nowhere.
    pub fn create(
        &mut self,
        name: &str,
        rate_per_minute: u32,
    ) -> Result<(KeyEntry, String), ApiKeyError> {
        if rate_per_minute == 0 {
            return Err(ApiKeyError::ZeroRate);
        }
        let mut secret = [0_u8; 32];
        OsRng.fill_bytes(&mut secret);
        let key = format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let entry = KeyEntry {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_owned(),
            sha256: hash(&key),
            rate_per_minute,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            revoked_at: None,
        };
        self.keys.push(entry.clone());
        Ok((entry, key))
    }

    /// Marks a key revoked; the entry stays, for the record.
    pub fn revoke(&mut self, id: &str) -> Result<(), ApiKeyError> {
        let entry = self
            .keys
            .iter_mut()
            .find(|entry| entry.id == id)
            .ok_or_else(|| ApiKeyError::Unknown(id.to_owned()))?;
        entry.revoked_at.get_or_insert_with(|| {
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        });
        Ok(())
    }
}

/// A key the gateway accepts, with its own rate limiter.
#[derive(Debug)]
pub struct ActiveKey {
    pub id: String,
    rate_per_minute: u32,
    pub limiter: DefaultDirectRateLimiter,
}

#[derive(Debug, Default)]
struct Loaded {
    /// (modified, length) of the file read; `None` when there was no file.
    stamp: Option<(SystemTime, u64)>,
    by_hash: HashMap<String, Arc<ActiveKey>>,
}

/// The keys in force, re-read by [`ApiKeys::refresh`] when the file changes.
#[derive(Debug)]
pub struct ApiKeys {
    path: PathBuf,
    loaded: RwLock<Loaded>,
}

impl ApiKeys {
    pub fn load(path: PathBuf) -> Self {
        let keys = Self {
            path,
            loaded: RwLock::new(Loaded::default()),
        };
        keys.refresh();
        keys
    }

    /// The key sent, unless unknown or revoked.
    pub fn find(&self, key: &str) -> Option<Arc<ActiveKey>> {
        self.loaded
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_hash
            .get(&hash(key))
            .cloned()
    }

    /// Re-reads the file if it changed. A file that does not parse leaves the keys as
    /// they were (logged), so a half-edited file never locks every key holder out.
    pub fn refresh(&self) {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .and_then(|meta| Some((meta.modified().ok()?, meta.len())));
        if self
            .loaded
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .stamp
            == stamp
            && stamp.is_some()
        {
            return;
        }
        let file = match KeyFile::read(&self.path) {
            Ok(file) => file,
            Err(error) => {
                tracing::error!(%error, "API keys not re-read; the keys held stay in force");
                return;
            }
        };
        let mut loaded = self.loaded.write().unwrap_or_else(PoisonError::into_inner);
        let mut by_hash = HashMap::new();
        for entry in file
            .keys
            .into_iter()
            .filter(|entry| entry.revoked_at.is_none())
        {
            let Some(rate) = NonZeroU32::new(entry.rate_per_minute) else {
                tracing::warn!(id = %entry.id, "API key with rate_per_minute 0 ignored");
                continue;
            };
            // An unchanged key keeps its limiter, so a reload resets nobody's quota.
            let active = match loaded.by_hash.get(&entry.sha256) {
                Some(active) if active.rate_per_minute == entry.rate_per_minute => active.clone(),
                _ => Arc::new(ActiveKey {
                    id: entry.id,
                    rate_per_minute: entry.rate_per_minute,
                    limiter: RateLimiter::direct(Quota::per_minute(rate)),
                }),
            };
            by_hash.insert(entry.sha256, active);
        }
        if stamp.is_some() || !by_hash.is_empty() || loaded.stamp.is_some() {
            tracing::info!(keys = by_hash.len(), path = %self.path.display(), "API keys read");
        }
        *loaded = Loaded { stamp, by_hash };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_keys_are_found_until_revoked_and_the_file_holds_no_key()
    -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("keys.json");
        let keys = ApiKeys::load(path.clone());
        assert!(keys.find("ck_anything").is_none(), "no file, no keys");

        let mut file = KeyFile::read(&path)?;
        let (entry, key) = file.create("open data partner", 60)?;
        file.write(&path)?;
        assert!(key.starts_with(PREFIX));
        assert!(!std::fs::read_to_string(&path)?.contains(&key));
        keys.refresh();
        assert_eq!(
            keys.find(&key).map(|found| found.id.clone()),
            Some(entry.id.clone())
        );

        // A half-written file keeps the keys in force.
        std::fs::write(&path, "{\"keys\": [")?;
        keys.refresh();
        assert!(keys.find(&key).is_some());

        file.revoke(&entry.id)?;
        file.write(&path)?;
        keys.refresh();
        assert!(keys.find(&key).is_none());
        assert!(matches!(file.revoke("nope"), Err(ApiKeyError::Unknown(_))));
        assert!(matches!(file.create("x", 0), Err(ApiKeyError::ZeroRate)));
        Ok(())
    }
}
