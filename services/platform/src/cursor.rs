//! Opaque page cursors that a client can hand back but neither forge nor edit.
//!
//! A cursor is the position (any serde value) as JSON, bound to a scope (the listing and
//! its filters) and signed with HMAC-SHA256 under the service's cursor key, then base64url.
//! Replicas of a service share the key (`cursor.key_path`), so a cursor from one replica
//! works on another and across restarts.

use std::{path::Path, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Serialize, de::DeserializeOwned};
use sha2::Sha256;

use crate::settings::CursorSettings;

type HmacSha256 = Hmac<Sha256>;

/// The shortest key accepted, in bytes (the HMAC-SHA256 block of security).
pub const MIN_KEY_BYTES: usize = 32;
/// Bytes of the signature kept in the cursor.
const TAG_BYTES: usize = 16;

/// Why a cursor or its key was refused.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    /// The client sent something that is not a cursor this listing issued.
    #[error("the cursor is not one this listing issued; start again without it")]
    Invalid,
    #[error("cursor key {path}: {reason}")]
    Key { path: String, reason: String },
}

/// Signs and checks cursors with one service's key.
#[derive(Clone)]
pub struct Cursors {
    /// Keyed once; cloned for each cursor.
    keyed: Arc<HmacSha256>,
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Cursors { key: <redacted> }")
    }
}

impl Cursors {
    /// The key from `settings`; without a key path, a random key for this process only
    /// (cursors then break on restart and between replicas, so production sets one).
    pub fn from_settings(settings: &CursorSettings) -> Result<Self, CursorError> {
        match &settings.key_path {
            Some(path) => Self::from_file(path),
            None => {
                tracing::warn!(
                    "cursor.key_path is not set: page cursors use a key for this process only"
                );
                Ok(Self::random())
            }
        }
    }

    /// Reads the key from a file (at least [`MIN_KEY_BYTES`] bytes; surrounding
    /// whitespace is ignored so `openssl rand -base64 48 > key` works).
    pub fn from_file(path: &Path) -> Result<Self, CursorError> {
        let error = |reason: String| CursorError::Key {
            path: path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|source| error(source.to_string()))?;
        let key = bytes.trim_ascii();
        if key.len() < MIN_KEY_BYTES {
            return Err(error(format!(
                "{} bytes; at least {MIN_KEY_BYTES} are needed",
                key.len()
            )));
        }
        Self::with_key(key).map_err(|_| error("unusable as an HMAC key".to_owned()))
    }

    fn with_key(key: &[u8]) -> Result<Self, hmac::digest::InvalidLength> {
        Ok(Self {
            keyed: Arc::new(HmacSha256::new_from_slice(key)?),
        })
    }

    /// A fresh random key.
    pub fn random() -> Self {
        let mut key = [0_u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut key);
        let keyed = HmacSha256::new_from_slice(&key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        Self {
            keyed: Arc::new(keyed),
        }
    }

    fn tag(&self, scope: &str, payload: &[u8]) -> HmacSha256 {
        let mut mac = (*self.keyed).clone();
        mac.update(&(scope.len() as u64).to_be_bytes());
        mac.update(scope.as_bytes());
        mac.update(payload);
        mac
    }

    /// The cursor for `position` in the listing named by `scope`.
    #[expect(
        clippy::expect_used,
        reason = "positions are plain data (strings, numbers, instants), which JSON always encodes"
    )]
    pub fn encode<T: Serialize>(&self, scope: &str, position: &T) -> String {
        let mut bytes = serde_json::to_vec(position).expect("a position serialises");
        let tag = self.tag(scope, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_BYTES]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The position in `cursor`, if this key signed it for the same `scope`.
    pub fn decode<T: DeserializeOwned>(&self, scope: &str, cursor: &str) -> Result<T, CursorError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| CursorError::Invalid)?;
        let split = bytes
            .len()
            .checked_sub(TAG_BYTES)
            .ok_or(CursorError::Invalid)?;
        let (payload, tag) = bytes.split_at(split);
        self.tag(scope, payload)
            .verify_truncated_left(tag)
            .map_err(|_| CursorError::Invalid)?;
        serde_json::from_slice(payload).map_err(|_| CursorError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_in_its_scope_only() {
        let cursors = Cursors::random();
        let cursor = cursors.encode("occupations?major=2", &("2134", 7));
        let position: (String, i32) = cursors.decode("occupations?major=2", &cursor).unwrap();
        assert_eq!(position, ("2134".to_owned(), 7));
        assert!(matches!(
            cursors.decode::<(String, i32)>("occupations?major=3", &cursor),
            Err(CursorError::Invalid)
        ));
    }

    #[test]
    fn an_edited_or_foreign_cursor_is_refused() {
        let cursors = Cursors::random();
        let cursor = cursors.encode("list", &"2134");
        let mut bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        bytes[1] ^= 1;
        let edited = URL_SAFE_NO_PAD.encode(bytes);
        assert!(cursors.decode::<String>("list", &edited).is_err());
        assert!(Cursors::random().decode::<String>("list", &cursor).is_err());
        for garbage in ["", "!!", "abc", "2134"] {
            assert!(
                cursors.decode::<String>("list", garbage).is_err(),
                "{garbage}"
            );
        }
    }

    #[test]
    fn replicas_sharing_a_key_file_accept_each_others_cursors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cursor.key");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
        let (one, two) = (
            Cursors::from_file(&path).unwrap(),
            Cursors::from_file(&path).unwrap(),
        );
        let cursor = one.encode("list", &42_u32);
        assert_eq!(two.decode::<u32>("list", &cursor).unwrap(), 42);

        std::fs::write(&path, "short").unwrap();
        let error = Cursors::from_file(&path).unwrap_err().to_string();
        assert!(error.contains("at least 32"), "{error}");
    }
}

/// A listing's page sizes: what `limit: 0` means, and the most one page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    pub default: u32,
    pub max: u32,
}

/// The page sizes of every listing unless it says otherwise.
pub const PAGE: PageLimits = PageLimits {
    default: 20,
    max: 100,
};

/// A page size over the listing's maximum: refused rather than cut, so a caller who
/// asked for more is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{limit} is over the maximum of {max}")]
pub struct LimitTooLarge {
    pub limit: u32,
    pub max: u32,
}

impl PageLimits {
    /// The page size `limit` asks for: 0 means the default.
    pub fn size(self, limit: u32) -> Result<u32, LimitTooLarge> {
        match limit {
            0 => Ok(self.default),
            limit if limit <= self.max => Ok(limit),
            limit => Err(LimitTooLarge {
                limit,
                max: self.max,
            }),
        }
    }
}

#[cfg(test)]
mod page_tests {
    use super::*;

    #[test]
    fn zero_is_the_default_and_over_the_maximum_is_refused() {
        assert_eq!(PAGE.size(0), Ok(20));
        assert_eq!(PAGE.size(100), Ok(100));
        let refused = PAGE.size(101).unwrap_err();
        assert_eq!(refused.to_string(), "101 is over the maximum of 100");
    }
}
