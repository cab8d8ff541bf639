//! `[cors]`: which browser origins may call the HTTP API and gRPC-Web.

use std::time::Duration;

use serde::Deserialize;

use crate::GatewayError;

/// `[cors]`: the browser origins allowed to call the HTTP API and gRPC-Web, exactly as
/// they send them (`https://advisers.example.org`), or with any port (`http://localhost:*`).
/// From the environment, one string of comma-separated origins. None: no CORS headers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CorsSettings {
    #[serde(deserialize_with = "origin_list")]
    pub allowed_origins: Vec<String>,
}

/// A list, or one string of comma-separated items (as an environment variable gives it).
fn origin_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<String>),
        One(String),
    }
    let items = match OneOrMany::deserialize(deserializer)? {
        OneOrMany::Many(items) => items,
        OneOrMany::One(text) => text.split(',').map(str::to_owned).collect(),
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}

/// One allowed origin: exact, or a scheme and host with any port (`…:*`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginPattern {
    Exact(String),
    AnyPort(String),
}

impl OriginPattern {
    fn parse(text: &str) -> Result<Self, GatewayError> {
        let bad = |why: &str| GatewayError::Serve(format!("cors.allowed_origins: {text:?} {why}"));
        let (pattern, base) = match text.strip_suffix(":*") {
            Some(base) => (Self::AnyPort(base.to_owned()), base),
            None => (Self::Exact(text.to_owned()), text),
        };
        let (scheme, host) = base.split_once("://").ok_or_else(|| {
            bad("is not an origin: write scheme://host[:port], as a browser sends it")
        })?;
        if !matches!(scheme, "http" | "https") {
            return Err(bad("must be http or https"));
        }
        if host.is_empty()
            || host.contains(['/', '*', ' '])
            || base.parse::<axum::http::HeaderValue>().is_err()
        {
            return Err(bad("is not an origin: no path, no wildcard but a final :*"));
        }
        Ok(pattern)
    }

    fn allows(&self, origin: &[u8]) -> bool {
        match self {
            Self::Exact(exact) => origin == exact.as_bytes(),
            Self::AnyPort(base) => origin.strip_prefix(base.as_bytes()).is_some_and(|rest| {
                rest.is_empty()
                    || rest
                        .strip_prefix(b":")
                        .is_some_and(|port| !port.is_empty() && port.iter().all(u8::is_ascii_digit))
            }),
        }
    }
}

impl CorsSettings {
    pub(crate) fn layer(&self) -> Result<tower_http::cors::CorsLayer, GatewayError> {
        use axum::http::{HeaderName, Method, header};
        use tower_http::cors::{AllowOrigin, CorsLayer};
        let patterns = self
            .allowed_origins
            .iter()
            .map(|origin| OriginPattern::parse(origin))
            .collect::<Result<Vec<_>, GatewayError>>()?;
        let named = |names: &[&'static str]| -> Vec<HeaderName> {
            names
                .iter()
                .map(|name| HeaderName::from_static(name))
                .collect()
        };
        Ok(CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| {
                patterns
                    .iter()
                    .any(|pattern| pattern.allows(origin.as_bytes()))
            }))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers(
                [
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::IF_MATCH,
                ]
                .into_iter()
                .chain(named(&[
                    "x-api-key",
                    "x-request-id",
                    "idempotency-key",
                    "traceparent",
                    "tracestate",
                    "x-grpc-web",
                    "x-user-agent",
                    "grpc-timeout",
                ]))
                .collect::<Vec<_>>(),
            )
            .expose_headers(
                [header::ETAG, header::RETRY_AFTER, header::LOCATION]
                    .into_iter()
                    .chain(named(&[
                        "x-request-id",
                        "idempotent-replayed",
                        "grpc-status",
                        "grpc-message",
                        "grpc-status-details-bin",
                    ]))
                    .collect::<Vec<_>>(),
            )
            .max_age(Duration::from_secs(600)))
    }
}

#[cfg(test)]
mod cors_tests {
    use super::{CorsSettings, OriginPattern};

    #[test]
    fn origins_match_exactly_or_with_any_port() -> Result<(), Box<dyn std::error::Error>> {
        let any_port = OriginPattern::parse("http://localhost:*")?;
        for allowed in [
            "http://localhost",
            "http://localhost:5173",
            "http://localhost:3000",
        ] {
            assert!(any_port.allows(allowed.as_bytes()), "{allowed}");
        }
        for refused in [
            "https://localhost:5173",
            "http://localhost.evil.example",
            "http://localhost:5173.evil.example",
            "http://localhost:",
            "http://127.0.0.1:5173",
        ] {
            assert!(!any_port.allows(refused.as_bytes()), "{refused}");
        }
        let exact = OriginPattern::parse("https://advisers.example.org")?;
        assert!(exact.allows(b"https://advisers.example.org"));
        assert!(!exact.allows(b"https://advisers.example.org:8443"));
        for bad in [
            "*",
            "localhost:3000",
            "ftp://example.org",
            "https://example.org/app",
            "https://*.example.org",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad} was taken");
        }
        Ok(())
    }

    #[test]
    fn the_environment_gives_a_comma_separated_list() -> Result<(), Box<dyn std::error::Error>> {
        let from_text: CorsSettings = serde_json::from_str(
            r#"{"allowed_origins": "http://localhost:*, http://127.0.0.1:*,"}"#,
        )?;
        assert_eq!(
            from_text.allowed_origins,
            ["http://localhost:*", "http://127.0.0.1:*"]
        );
        let from_list: CorsSettings =
            serde_json::from_str(r#"{"allowed_origins": ["https://a.example"]}"#)?;
        assert_eq!(from_list.allowed_origins, ["https://a.example"]);
        Ok(())
    }
}
