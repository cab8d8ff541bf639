//! The caller's identity between the gateway and the services.
//!
//! The gateway passes the caller as a 60-second ES256 JWT in the `x-careers-identity`
//! metadata entry, signed with its own key; every service verifies it against the
//! gateway's public keys (a JWKS file, two keys while one is rotated out) and refuses a
//! call without a valid one (UNAUTHENTICATED). Health and reflection are exempt: they are
//! separate services without the interceptor.

use std::{path::Path, sync::Arc, time::Duration};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
    jwk::JwkSet,
};
use serde::{Deserialize, Serialize};
use tonic::{Code, Request, Status};

/// The metadata entry carrying the identity token.
pub const METADATA_KEY: &str = "x-careers-identity";
/// Who signs identity tokens, and for whom.
pub const ISSUER: &str = "careers-gateway";
pub const AUDIENCE: &str = "careers-services";
/// How long an identity token is valid.
pub const TTL: Duration = Duration::from_secs(60);
/// Clock skew tolerated between the gateway and a service.
const LEEWAY_SECONDS: u64 = 5;

/// Who is calling, as the gateway verified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub sub: String,
    pub roles: Vec<String>,
    /// The organisation, for roles that need one (a school URN for `school_contact`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The sector skills council, for `ssc_publisher`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssc: Option<String>,
}

impl Identity {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    #[serde(flatten)]
    identity: Identity,
}

/// Why identity keys or a token were refused.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("identity keys {path}: {reason}")]
    Keys { path: String, reason: String },
    #[error("identity token: {0}")]
    Token(String),
}

/// The gateway's public keys, as services verify with them.
#[derive(Clone)]
pub struct IdentityVerifier {
    /// (key id, key); a token names its key by `kid`.
    keys: Arc<Vec<(Option<String>, DecodingKey)>>,
    validation: Validation,
}

impl std::fmt::Debug for IdentityVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityVerifier")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl IdentityVerifier {
    /// Reads a JWKS file of ES256 public keys for the internal identity token.
    pub fn from_jwks_file(path: &Path) -> Result<Self, IdentityError> {
        Self::from_jwks_file_for(path, ISSUER, AUDIENCE)
    }

    /// Reads a JWKS file of ES256 public keys for tokens of `issuer` meant for
    /// `audience` (the gateway verifies callers' bearer tokens this way).
    pub fn from_jwks_file_for(
        path: &Path,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, IdentityError> {
        let fail = |reason: String| IdentityError::Keys {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|error| fail(error.to_string()))?;
        let set: JwkSet = serde_json::from_str(&text).map_err(|error| fail(error.to_string()))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let key = DecodingKey::from_jwk(jwk).map_err(|error| fail(error.to_string()))?;
            keys.push((jwk.common.key_id.clone(), key));
        }
        if keys.is_empty() {
            return Err(fail("no keys".into()));
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["iss", "aud", "sub", "iat", "nbf", "exp"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        Ok(Self {
            keys: Arc::new(keys),
            validation,
        })
    }

    /// The identity in a token, if it is well formed, signed by one of the keys and
    /// current.
    pub fn verify(&self, token: &str) -> Result<Identity, IdentityError> {
        self.verify_until(token).map(|(identity, _)| identity)
    }

    /// Whether a key with this id is among the keys.
    pub fn knows_key(&self, kid: &str) -> bool {
        self.keys
            .iter()
            .any(|(known, _)| known.as_deref() == Some(kid))
    }

    /// [`Self::verify`], with the token's `exp` (Unix seconds), for callers that cache.
    pub fn verify_until(&self, token: &str) -> Result<(Identity, u64), IdentityError> {
        let header =
            decode_header(token).map_err(|error| IdentityError::Token(error.to_string()))?;
        let candidates = self
            .keys
            .iter()
            .filter(|(kid, _)| header.kid.is_none() || kid.is_none() || *kid == header.kid);
        let mut last = IdentityError::Token("no key matches the token's key id".into());
        for (_, key) in candidates {
            match decode::<Claims>(token, key, &self.validation) {
                Ok(data) => return Ok((data.claims.identity, data.claims.exp)),
                Err(error) => last = IdentityError::Token(error.to_string()),
            }
        }
        Err(last)
    }

    /// A tonic interceptor that refuses calls without a valid identity and puts the
    /// [`Identity`] into the request's extensions for the handlers.
    pub fn interceptor(
        &self,
    ) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + use<> {
        let verifier = self.clone();
        move |mut request: Request<()>| {
            let token = request
                .metadata()
                .get(METADATA_KEY)
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| {
                    crate::status::status(
                        Code::Unauthenticated,
                        "identity_required",
                        "calls to careers services need the gateway's x-careers-identity token",
                    )
                })?;
            let identity = verifier.verify(token).map_err(|error| {
                tracing::debug!(%error, "identity token refused");
                crate::status::status(
                    Code::Unauthenticated,
                    "identity_invalid",
                    "the x-careers-identity token is not valid",
                )
            })?;
            request.extensions_mut().insert(identity);
            Ok(request)
        }
    }
}

/// The key id a token's header names, if it is well formed and names one.
pub fn token_key_id(token: &str) -> Option<String> {
    decode_header(token).ok().and_then(|header| header.kid)
}

/// The caller's identity in a handler (put there by the interceptor).
pub fn caller<T>(request: &Request<T>) -> Result<&Identity, Status> {
    request.extensions().get::<Identity>().ok_or_else(|| {
        crate::status::status(
            Code::Unauthenticated,
            "identity_required",
            "no caller identity",
        )
    })
}

/// Signs identity tokens: the gateway, `careersctl`, and tests.
#[derive(Clone)]
pub struct IdentitySigner {
    key: EncodingKey,
    kid: String,
}

impl std::fmt::Debug for IdentitySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl IdentitySigner {
    pub fn from_pem(pem: &[u8], kid: impl Into<String>) -> Result<Self, IdentityError> {
        let key = EncodingKey::from_ec_pem(pem).map_err(|error| IdentityError::Keys {
            path: "(pem)".into(),
            reason: error.to_string(),
        })?;
        Ok(Self {
            key,
            kid: kid.into(),
        })
    }

    /// An internal identity token for `identity`, valid for [`TTL`].
    pub fn sign(&self, identity: &Identity) -> Result<String, IdentityError> {
        self.sign_for(identity, ISSUER, AUDIENCE, TTL)
    }

    /// A token of `issuer` for `audience`, valid for `ttl` (development bearer tokens).
    pub fn sign_for(
        &self,
        identity: &Identity,
        issuer: &str,
        audience: &str,
        ttl: Duration,
    ) -> Result<String, IdentityError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or_default();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let claims = Claims {
            iss: issuer.into(),
            aud: audience.into(),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs(),
            identity: identity.clone(),
        };
        encode(&header, &claims, &self.key).map_err(|error| IdentityError::Token(error.to_string()))
    }
}

/// A new P-256 key pair: the private key as PKCS#8 PEM and the public key as a JWKS
/// document with key id `kid`.
pub fn generate_key_pair(kid: &str) -> Result<(String, String), IdentityError> {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|error| IdentityError::Keys {
            path: "(generated)".into(),
            reason: error.to_string(),
        })?;
    let mut jwk: serde_json::Value = serde_json::from_str(&secret.public_key().to_jwk_string())
        .map_err(|error| IdentityError::Keys {
            path: "(generated)".into(),
            reason: error.to_string(),
        })?;
    jwk["kid"] = kid.into();
    jwk["alg"] = "ES256".into();
    jwk["use"] = "sig".into();
    let jwks = serde_json::json!({ "keys": [jwk] }).to_string();
    Ok((pem.to_string(), jwks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(kid: &str) -> (IdentitySigner, IdentityVerifier, tempfile::NamedTempFile) {
        let (pem, jwks) = generate_key_pair(kid).unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), jwks).unwrap();
        let verifier = IdentityVerifier::from_jwks_file(file.path()).unwrap();
        (
            IdentitySigner::from_pem(pem.as_bytes(), kid).unwrap(),
            verifier,
            file,
        )
    }

    fn publisher() -> Identity {
        Identity {
            sub: "user-1".into(),
            roles: vec!["ssc_publisher".into()],
            org: None,
            ssc: Some("digital".into()),
        }
    }

    #[test]
    fn a_signed_identity_verifies_and_round_trips() {
        let (signer, verifier, _file) = keys("k1");
        let token = signer.sign(&publisher()).unwrap();
        assert_eq!(verifier.verify(&token).unwrap(), publisher());
    }

    #[test]
    fn a_token_from_another_key_or_garbage_is_refused() {
        let (_, verifier, _file) = keys("k1");
        let (forger, _, _other) = keys("k1");
        assert!(
            verifier
                .verify(&forger.sign(&publisher()).unwrap())
                .is_err()
        );
        assert!(verifier.verify("not.a.token").is_err());
    }

    #[test]
    fn the_interceptor_refuses_a_call_without_a_token_and_passes_the_identity_on() {
        let (signer, verifier, _file) = keys("k1");
        let mut interceptor = verifier.interceptor();
        let refused = interceptor(Request::new(())).unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated);

        let mut request = Request::new(());
        let token = signer.sign(&publisher()).unwrap();
        request
            .metadata_mut()
            .insert(METADATA_KEY, token.parse().unwrap());
        let passed = interceptor(request).unwrap();
        assert_eq!(caller(&passed).unwrap().ssc.as_deref(), Some("digital"));
    }
}
