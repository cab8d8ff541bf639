//! The OpenAPI 3.1 document at `/openapi.json`, generated from the route table in
//! [`crate::access`] (paths, methods, who may call them, which take an API key) and the
//! query parameters below; `/docs` is Swagger UI, vendored so it works offline.
//!
//! Success bodies are described as JSON objects, not field by field: the services' proto
//! messages are the source of those shapes (CONTRACT.md lists them). Every error is
//! described exactly, as problem+json.

use axum::{
    Json, Router,
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Map, Value, json};

use crate::access::{Allowed, ROUTES, RouteAccess};

/// The statuses any `/v1` operation may answer with besides its success.
const ERRORS: [(u16, &str); 12] = [
    (400, "The request is malformed or fails validation."),
    (401, "No valid bearer token or API key."),
    (
        403,
        "The token's roles or the API key do not reach this route.",
    ),
    (404, "No such resource, or not the caller's to see."),
    (
        409,
        "A conflict: a duplicate, a stale version or a wrong state.",
    ),
    (413, "The body is over the route's limit."),
    (415, "The Content-Type is not one this route takes."),
    (428, "If-Match is required."),
    (429, "Over the caller's rate; see Retry-After."),
    (500, "An internal error, with no detail."),
    (
        503,
        "An upstream service is down, or the gateway is shedding load.",
    ),
    (504, "An upstream service did not answer in time."),
];

fn string() -> Value {
    json!({"type": "string"})
}

fn parameter(name: &str, location: &str, schema: Value) -> Value {
    json!({"name": name, "in": location, "required": location == "path", "schema": schema})
}

fn page_parameters() -> Vec<Value> {
    vec![
        parameter("cursor", "query", string()),
        parameter(
            "limit",
            "query",
            json!({"type": "integer", "minimum": 1, "maximum": 100}),
        ),
    ]
}

/// The query parameters a route reads.
fn query_parameters(route: &RouteAccess) -> Vec<Value> {
    let query = |name: &str, schema: Value| parameter(name, "query", schema);
    let mut parameters = match (route.method, route.path) {
        ("GET", "/v1/occupations") => vec![
            query(
                "major_group",
                json!({"type": "string", "pattern": "^[1-9]$"}),
            ),
            query("stem", json!({"type": "boolean"})),
            query(
                "route",
                json!({"type": "string", "enum": ["university", "apprenticeship", "college",
                    "direct_entry", "professional_registration"]}),
            ),
            query("min_median_pay", json!({"type": "number"})),
            query(
                "outlook",
                json!({"type": "string", "enum": ["growing", "stable", "declining"]}),
            ),
        ],
        ("GET", "/v1/occupations/search") => vec![json!({
            "name": "q", "in": "query", "required": true, "schema": string()
        })],
        ("GET", "/v1/occupations/suggest") => vec![json!({
            "name": "q", "in": "query", "required": true, "schema": string()
        })],
        ("GET", "/v1/occupations/{soc}/profile") => vec![query("postcode_district", string())],
        ("GET", "/v1/lmi/figures") => vec![
            query("soc_code", string()),
            query("region", string()),
            query("measure", string()),
            query("breakdown", string()),
            query("period_from", string()),
            query("period_to", string()),
            query("as_of", string()),
            query(
                "view",
                json!({"type": "string", "enum": ["latest", "history"]}),
            ),
        ],
        ("POST", "/v1/lmi/submissions") => vec![
            query("submission_key", string()),
            query("dry_run", json!({"type": "boolean"})),
        ],
        ("GET", "/v1/transfers") => vec![query(
            "direction",
            json!({"type": "string", "enum": ["incoming", "outgoing"]}),
        )],
        ("GET", "/v1/audit") => vec![query("client_id", string())],
        _ => Vec::new(),
    };
    let paged = route.method == "GET"
        && matches!(
            route.path,
            "/v1/occupations"
                | "/v1/occupations/search"
                | "/v1/occupations/{soc}/history"
                | "/v1/lmi/figures"
                | "/v1/lmi/review"
                | "/v1/lmi/sscs"
                | "/v1/clients"
                | "/v1/ambassadors"
                | "/v1/activity-requests"
                | "/v1/engagements"
                | "/v1/audit"
        );
    if paged {
        parameters.extend(page_parameters());
    }
    parameters
}

/// The statuses a route answers with when it succeeds.
fn successes(route: &RouteAccess) -> &'static [u16] {
    match (route.method, route.path) {
        ("DELETE", _) => &[204],
        ("POST", "/v1/matching/runs") => &[202],
        ("POST", "/v1/lmi/submissions") => &[200, 201],
        ("POST", path)
            if path.ends_with("/accept")
                || path.ends_with("/decline")
                || path.ends_with("/confirm")
                || path.ends_with("/complete")
                || path.ends_with("/cancel")
                || path.ends_with("/{decision}")
                || path == "/v1/audit/verify" =>
        {
            &[200]
        }
        ("POST", _) => &[201],
        _ => &[200],
    }
}

fn operation(route: &RouteAccess) -> Value {
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = match name {
                "soc" => json!({"type": "string", "pattern": "^[1-9][0-9]{3}$"}),
                "decision" => json!({"type": "string", "enum": ["approve", "reject"]}),
                _ => string(),
            };
            parameter(name, "path", schema)
        })
        .collect();
    parameters.extend(query_parameters(route));
    if route.method == "PATCH" {
        parameters.push(json!({
            "name": "If-Match", "in": "header", "required": true,
            "schema": {"type": "string"}, "description": "The ETag the resource was read with."
        }));
    }
    let mut responses = Map::new();
    for status in successes(route) {
        let described = if *status == 204 {
            json!({"description": "Done; no content."})
        } else {
            json!({
                "description": "Success.",
                "content": {"application/json": {"schema": {"type": "object"}}}
            })
        };
        responses.insert(status.to_string(), described);
    }
    for (status, description) in ERRORS {
        responses.insert(
            status.to_string(),
            json!({
                "description": description,
                "content": {"application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"}
                }}
            }),
        );
    }
    let roles = match route.allowed {
        Allowed::AnyRole => "any role".to_owned(),
        Allowed::Roles(roles) => roles.join(", "),
    };
    let mut security = vec![json!({"bearer": []})];
    if route.api_key {
        security.push(json!({"apiKey": []}));
    }
    let mut operation = json!({
        "operationId": operation_id(route),
        "summary": format!("{} {}", route.method, route.path),
        "description": format!(
            "Roles: {roles}.{}",
            if route.api_key { " An API key may also read it." } else { "" }
        ),
        "tags": [route.path.split('/').nth(2).unwrap_or("v1")],
        "parameters": parameters,
        "responses": responses,
        "security": security,
        "x-roles": match route.allowed {
            Allowed::AnyRole => json!(crate::access::ROLES),
            Allowed::Roles(roles) => json!(roles),
        },
    });
    if matches!(route.method, "POST" | "PUT" | "PATCH") {
        let mut content = Map::new();
        let json_type = if route.method == "PATCH" {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        content.insert(json_type.to_owned(), json!({"schema": {"type": "object"}}));
        if route.path == "/v1/lmi/submissions" {
            content.insert("text/csv".to_owned(), json!({"schema": {"type": "string"}}));
        }
        // Actions on an existing resource take no body, or an optional one.
        let required = !matches!(successes(route), [200] | [202]);
        operation["requestBody"] = json!({"required": required, "content": content});
    }
    operation
}

fn operation_id(route: &RouteAccess) -> String {
    let mut id = route.method.to_ascii_lowercase();
    for segment in route.path.split('/').skip(2) {
        id.push('_');
        id.push_str(
            &segment
                .trim_start_matches('{')
                .trim_end_matches('}')
                .replace('-', "_"),
        );
    }
    id
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        item[route.method.to_ascii_lowercase()] = operation(route);
    }
    let health = |summary: &str, statuses: &[(u16, &str)]| {
        let mut responses = Map::new();
        for (status, description) in statuses {
            responses.insert(
                status.to_string(),
                json!({"description": description,
                       "content": {"application/json": {"schema": {"type": "object"}}}}),
            );
        }
        json!({"get": {"summary": summary, "security": [], "responses": responses,
                       "operationId": summary.replace(' ', "_")}})
    };
    paths.insert(
        "/readyz".to_owned(),
        health(
            "readiness",
            &[
                (200, "Every upstream is serving."),
                (503, "Some upstream is not."),
            ],
        ),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Careers service API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Impartial careers guidance grounded in labour market information. \
                Who may call what: docs/access.md. Errors are RFC 9457 problem+json.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail", "code", "message"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                        "message": {"type": "string"},
                        "request_id": {"type": "string"},
                        "errors": {"type": "array", "items": {
                            "type": "object", "required": ["field", "message"],
                            "properties": {"field": {"type": "string"},
                                           "message": {"type": "string"}}
                        }},
                    },
                },
            },
        },
    })
}

const SWAGGER_JS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_CSS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui.css");
const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Careers service API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body>
</html>
"#;
const DOCS_INIT: &str =
    "window.ui = SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui'});\n";
/// Swagger UI runs its own scripts and inline styles, from this origin only.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// `/openapi.json`, `/docs` and its assets: open, like the health endpoints.
pub fn routes() -> Router {
    Router::new()
        .route("/openapi.json", get(|| async { Json(document()) }))
        .route(
            "/docs",
            get(|| async { asset("text/html; charset=utf-8", DOCS_HTML.as_bytes()) }),
        )
        .route("/docs/{file}", get(docs_asset))
}

async fn docs_asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "swagger-ui-bundle.js" => asset("text/javascript", SWAGGER_JS),
        "swagger-ui.css" => asset("text/css", SWAGGER_CSS),
        "init.js" => asset("text/javascript", DOCS_INIT.as_bytes()),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_once_with_its_security() {
        let document = document();
        for route in ROUTES {
            let operation = &document["paths"][route.path][route.method.to_ascii_lowercase()];
            assert!(
                operation.is_object(),
                "{} {} missing",
                route.method,
                route.path
            );
            let schemes: Vec<&str> = operation["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|scheme| scheme.as_object()?.keys().next().map(String::as_str))
                .collect();
            assert_eq!(schemes.contains(&"apiKey"), route.api_key, "{}", route.path);
            assert!(operation["responses"]["401"].is_object());
        }
        let ids: std::collections::BTreeSet<String> = ROUTES.iter().map(operation_id).collect();
        assert_eq!(ids.len(), ROUTES.len(), "operation ids are unique");
    }
}
