//! Callers' bearer tokens, verified against the issuer's JWKS file.
//!
//! The file is re-read when a token names a key id the gateway does not hold (the issuer
//! has rotated), at most once per [`RELOAD_INTERVAL`] so made-up key ids cannot make it
//! read the file on every request. Verified tokens are cached by their SHA-256 until
//! their `exp`, in a bounded cache (quick_cache, which evicts the least useful entries):
//! a repeat caller costs a hash, not a signature check.

use std::{
    path::PathBuf,
    sync::{Mutex, PoisonError, RwLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use careers_platform::identity::{self, Identity, IdentityError, IdentityVerifier};
use sha2::{Digest, Sha256};

use crate::AuthSettings;

/// The shortest time between two reads of the JWKS file for unknown key ids.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// Verified identities and their `exp`, by the token's SHA-256.
type Cache = quick_cache::sync::Cache<[u8; 32], (Identity, u64)>;

#[derive(Debug)]
pub struct Bearer {
    path: PathBuf,
    issuer: String,
    audience: String,
    verifier: RwLock<IdentityVerifier>,
    last_reload: Mutex<Option<Instant>>,
    /// None when `token_cache_entries` is 0.
    cache: Option<Cache>,
}

impl Bearer {
    pub fn load(settings: &AuthSettings) -> Result<Self, IdentityError> {
        let verifier = IdentityVerifier::from_jwks_file_for(
            &settings.jwks_path,
            &settings.issuer,
            &settings.audience,
        )?;
        Ok(Self {
            path: settings.jwks_path.clone(),
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            verifier: RwLock::new(verifier),
            last_reload: Mutex::new(None),
            cache: (settings.token_cache_entries > 0)
                .then(|| Cache::new(settings.token_cache_entries)),
        })
    }

    /// The identity in a token signed by one of the issuer's keys, for this audience,
    /// current (`nbf`, `exp`, with a few seconds' skew), and ES256.
    pub fn verify(&self, token: &str) -> Result<Identity, IdentityError> {
        let now = unix_now();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(cache) = &self.cache
            && let Some((identity, exp)) = cache.get(&digest)
            && exp > now
        {
            return Ok(identity);
        }
        let verifier = self.current();
        let (identity, exp) = match verifier.verify_until(token) {
            Err(error) => {
                let unknown_key =
                    identity::token_key_id(token).is_some_and(|kid| !verifier.knows_key(&kid));
                if unknown_key && self.reload() {
                    self.current().verify_until(token)?
                } else {
                    return Err(error);
                }
            }
            Ok(verified) => verified,
        };
        if let Some(cache) = &self.cache {
            // An expired entry is never answered from; eviction makes room in time.
            cache.insert(digest, (identity.clone(), exp));
        }
        Ok(identity)
    }

    fn current(&self) -> IdentityVerifier {
        self.verifier
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the JWKS unless it was read within [`RELOAD_INTERVAL`]; true when new
    /// keys are in place.
    fn reload(&self) -> bool {
        {
            let mut last = self
                .last_reload
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < RELOAD_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match IdentityVerifier::from_jwks_file_for(&self.path, &self.issuer, &self.audience) {
            Ok(verifier) => {
                tracing::info!(path = %self.path.display(), "JWKS re-read for an unknown key id");
                *self
                    .verifier
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = verifier;
                true
            }
            Err(error) => {
                tracing::warn!(%error, "JWKS re-read failed; keeping the keys held");
                false
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0)
}
