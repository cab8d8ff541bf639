//! The internal identity tokens the gateway signs for its callers, reused while more than
//! [`REUSE_FOR`] of their minute is left: an ES256 signature per request would be the
//! largest cost of a read. Bounded at [`CAPACITY`] callers; quick_cache evicts the least
//! useful (S3-FIFO) rather than dropping every caller's token at once.

use std::time::{Duration, Instant};

use careers_platform::identity::{Identity, IdentityError, IdentitySigner, TTL};

/// How long a signed token is handed out again; the rest of its TTL covers the call.
pub const REUSE_FOR: Duration = Duration::from_secs(30);
const CAPACITY: usize = 10_000;

#[derive(Debug)]
pub struct InternalTokens {
    signer: IdentitySigner,
    minted: quick_cache::sync::Cache<String, (String, Instant)>,
}

impl InternalTokens {
    pub fn new(signer: IdentitySigner) -> Self {
        Self {
            signer,
            minted: quick_cache::sync::Cache::new(CAPACITY),
        }
    }

    /// A token for `caller` with at least `TTL - REUSE_FOR` left.
    pub fn token(&self, caller: &Identity) -> Result<String, IdentityError> {
        let key = serde_json::to_string(caller)
            .map_err(|error| IdentityError::Token(error.to_string()))?;
        if let Some((token, at)) = self.minted.get(&key)
            && at.elapsed() < REUSE_FOR.min(TTL)
        {
            return Ok(token);
        }
        let token = self.signer.sign(caller)?;
        self.minted.insert(key, (token.clone(), Instant::now()));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use careers_platform::identity::{IdentityVerifier, generate_key_pair};

    use super::*;

    #[test]
    fn a_caller_gets_the_same_valid_token_and_another_caller_its_own()
    -> Result<(), Box<dyn std::error::Error>> {
        let (pem, jwks) = generate_key_pair("k1")?;
        let directory = tempfile::tempdir()?;
        let jwks_path = directory.path().join("jwks.json");
        std::fs::write(&jwks_path, jwks)?;
        let verifier = IdentityVerifier::from_jwks_file(&jwks_path)?;
        let tokens = InternalTokens::new(IdentitySigner::from_pem(pem.as_bytes(), "k1")?);
        let caller = |sub: &str| Identity {
            sub: sub.to_owned(),
            roles: vec!["adviser".to_owned()],
            org: Some("org-1".to_owned()),
            ssc: None,
        };
        let first = tokens.token(&caller("a"))?;
        assert_eq!(tokens.token(&caller("a"))?, first);
        let other = tokens.token(&caller("b"))?;
        assert_ne!(other, first);
        assert_eq!(verifier.verify(&first)?, caller("a"));
        assert_eq!(verifier.verify(&other)?, caller("b"));
        Ok(())
    }
}
