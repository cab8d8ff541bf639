//! Who may call which route: one table, enforced by the gateway before any upstream is
//! called. The services check again, more finely (own organisation, own record, own
//! school), so a route open to a role here can still answer 403 or 404 there.
//!
//! `docs/access.md` is this table rendered ([`markdown`]); a test keeps the two equal, and
//! `tests/system/tests/access.rs` drives every row of the document against the running
//! system with every role, no token and an API key.

use axum::http::Method;

/// Every role a bearer token may carry (CONTRACT.md).
pub const ROLES: [&str; 9] = [
    "adviser",
    "supervisor",
    "ssc_publisher",
    "qa_reviewer",
    "catalogue_editor",
    "ambassador_coordinator",
    "school_contact",
    "ambassador",
    "operator",
];

/// Which bearer tokens a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// A token with any of [`ROLES`].
    AnyRole,
    /// A token with one of these roles.
    Roles(&'static [&'static str]),
}

impl Allowed {
    pub fn admits(self, roles: &[String]) -> bool {
        let listed: &[&str] = match self {
            Self::AnyRole => &ROLES,
            Self::Roles(listed) => listed,
        };
        roles.iter().any(|role| listed.contains(&role.as_str()))
    }
}

/// One route: its method, its path as the router spells it, who may call it.
#[derive(Debug, Clone, Copy)]
pub struct RouteAccess {
    pub method: &'static str,
    pub path: &'static str,
    pub allowed: Allowed,
    /// Open data an `X-API-Key` may read.
    pub api_key: bool,
}

const CASEWORK: &[&str] = &["adviser", "supervisor"];
const SUPERVISOR: &[&str] = &["supervisor"];
const EDITOR: &[&str] = &["catalogue_editor"];
const PUBLISHER: &[&str] = &["ssc_publisher"];
const SUBMISSION_READERS: &[&str] = &["ssc_publisher", "qa_reviewer"];
const REVIEWER: &[&str] = &["qa_reviewer"];
const OPERATOR: &[&str] = &["operator"];
const COORDINATOR: &[&str] = &["ambassador_coordinator"];
const AMBASSADOR_RECORD: &[&str] = &["ambassador_coordinator", "ambassador"];
const SCHOOL_REQUESTS: &[&str] = &["ambassador_coordinator", "school_contact"];
const ENGAGED: &[&str] = &["ambassador_coordinator", "school_contact", "ambassador"];
const SCHOOL_REPORT: &[&str] = &["school_contact", "adviser", "supervisor"];

const fn open(method: &'static str, path: &'static str) -> RouteAccess {
    RouteAccess {
        method,
        path,
        allowed: Allowed::AnyRole,
        api_key: true,
    }
}

const fn only(
    method: &'static str,
    path: &'static str,
    roles: &'static [&'static str],
) -> RouteAccess {
    RouteAccess {
        method,
        path,
        allowed: Allowed::Roles(roles),
        api_key: false,
    }
}

/// Every `/v1` route.
pub const ROUTES: &[RouteAccess] = &[
    open("GET", "/v1/occupations"),
    open("GET", "/v1/occupations/search"),
    open("GET", "/v1/occupations/suggest"),
    open("GET", "/v1/occupations/{soc}"),
    only("PATCH", "/v1/occupations/{soc}", EDITOR),
    open("GET", "/v1/occupations/{soc}/related"),
    open("GET", "/v1/occupations/{soc}/history"),
    open("GET", "/v1/occupations/{soc}/profile"),
    open("GET", "/v1/lmi/figures"),
    only("POST", "/v1/lmi/submissions", PUBLISHER),
    only("GET", "/v1/lmi/submissions/{id}", SUBMISSION_READERS),
    only("GET", "/v1/lmi/submissions/{id}/delta", SUBMISSION_READERS),
    only("GET", "/v1/lmi/review", REVIEWER),
    only("POST", "/v1/lmi/review/{row_id}/{decision}", REVIEWER),
    only("GET", "/v1/lmi/sscs", OPERATOR),
    only("POST", "/v1/lmi/sscs", OPERATOR),
    only("GET", "/v1/lmi/sscs/{id}", OPERATOR),
    only("PUT", "/v1/lmi/sscs/{id}", OPERATOR),
    only("GET", "/v1/clients", CASEWORK),
    only("POST", "/v1/clients", CASEWORK),
    only("GET", "/v1/clients/{id}", CASEWORK),
    only("PATCH", "/v1/clients/{id}", CASEWORK),
    only("DELETE", "/v1/clients/{id}", SUPERVISOR),
    only("GET", "/v1/clients/{id}/notes", CASEWORK),
    only("POST", "/v1/clients/{id}/notes", CASEWORK),
    only(
        "POST",
        "/v1/clients/{id}/notes/{note_id}/amendments",
        CASEWORK,
    ),
    only("GET", "/v1/clients/{id}/interactions", CASEWORK),
    only("POST", "/v1/clients/{id}/interactions", CASEWORK),
    only("GET", "/v1/clients/{id}/consents", CASEWORK),
    only("POST", "/v1/clients/{id}/consents", CASEWORK),
    only("GET", "/v1/clients/{id}/referrals", CASEWORK),
    only("POST", "/v1/clients/{id}/referrals", CASEWORK),
    only("GET", "/v1/clients/{id}/action-plan", CASEWORK),
    only("PUT", "/v1/clients/{id}/action-plan", CASEWORK),
    only("GET", "/v1/clients/{id}/outcomes", CASEWORK),
    only("POST", "/v1/clients/{id}/outcomes", CASEWORK),
    only("GET", "/v1/clients/{id}/export", CASEWORK),
    only("GET", "/v1/clients/{id}/gatsby", CASEWORK),
    only("POST", "/v1/clients/{id}/transfers", CASEWORK),
    only("GET", "/v1/transfers", CASEWORK),
    only("POST", "/v1/transfers/{id}/accept", SUPERVISOR),
    only("GET", "/v1/schools/{urn}/gatsby", SCHOOL_REPORT),
    only("GET", "/v1/audit", SUPERVISOR),
    only("POST", "/v1/audit/verify", SUPERVISOR),
    only("GET", "/v1/ambassadors", COORDINATOR),
    only("POST", "/v1/ambassadors", COORDINATOR),
    only("GET", "/v1/ambassadors/{id}", AMBASSADOR_RECORD),
    only("PATCH", "/v1/ambassadors/{id}", AMBASSADOR_RECORD),
    only("DELETE", "/v1/ambassadors/{id}", AMBASSADOR_RECORD),
    only("GET", "/v1/activity-requests", SCHOOL_REQUESTS),
    only("POST", "/v1/activity-requests", SCHOOL_REQUESTS),
    only("GET", "/v1/activity-requests/{id}", SCHOOL_REQUESTS),
    only("POST", "/v1/matching/runs", COORDINATOR),
    only("GET", "/v1/matching/runs/{id}", COORDINATOR),
    only("GET", "/v1/engagements", ENGAGED),
    only("POST", "/v1/engagements/{id}/accept", AMBASSADOR_RECORD),
    only("POST", "/v1/engagements/{id}/decline", AMBASSADOR_RECORD),
    only("POST", "/v1/engagements/{id}/confirm", SCHOOL_REQUESTS),
    only("POST", "/v1/engagements/{id}/complete", SCHOOL_REQUESTS),
    only("POST", "/v1/engagements/{id}/cancel", ENGAGED),
];

/// The services' gRPC methods an API key may call on the gateway's gRPC port: the
/// open-data reads. Every other method needs a bearer token with one of [`ROLES`]; the
/// services check the role itself, as they do for HTTP.
pub const GRPC_OPEN: &[(&str, &str)] = &[
    (OCCUPATIONS, "GetOccupation"),
    (OCCUPATIONS, "ListOccupations"),
    (OCCUPATIONS, "ListOccupationHistory"),
    (OCCUPATIONS, "SearchOccupations"),
    (OCCUPATIONS, "SuggestOccupations"),
    (OCCUPATIONS, "ListRelatedOccupations"),
    (LMI, "ListFigures"),
    (AMBASSADORS, "CountAvailableAmbassadors"),
];

const OCCUPATIONS: &str = careers_proto::service_names::OCCUPATIONS;
const LMI: &str = careers_proto::service_names::LMI;
const AMBASSADORS: &str = careers_proto::service_names::AMBASSADORS;

/// Whether an API key may call this gRPC method.
pub fn grpc_open(service: &str, method: &str) -> bool {
    GRPC_OPEN.contains(&(service, method))
}

/// The entry for a request, by its method and the route the router matched.
pub fn lookup(method: &Method, matched_path: &str) -> Option<&'static RouteAccess> {
    // HEAD is answered by the GET handler, so it takes the GET's access.
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTES
        .iter()
        .find(|route| route.path == matched_path && route.method == method)
}

/// The methods `matched_path` is served with (its `Allow`), and the path as the table
/// holds it; none when the table has no such path.
pub fn methods_of(matched_path: &str) -> Option<(&'static str, Vec<&'static str>)> {
    let routes: Vec<_> = ROUTES
        .iter()
        .filter(|route| route.path == matched_path)
        .collect();
    let path = routes.first()?.path;
    let mut methods: Vec<_> = routes.iter().map(|route| route.method).collect();
    if methods.contains(&"GET") {
        methods.push("HEAD");
    }
    Some((path, methods))
}

/// The table as `docs/access.md` holds it: one row per route, one column per role,
/// then the API key.
pub fn markdown() -> String {
    let mut text = String::from("| Route |");
    for role in ROLES {
        text.push_str(&format!(" {role} |"));
    }
    text.push_str(" API key |\n|---|");
    text.push_str(&"---|".repeat(ROLES.len() + 1));
    text.push('\n');
    for route in ROUTES {
        text.push_str(&format!("| `{} {}` |", route.method, route.path));
        for role in ROLES {
            let mark = if route.allowed.admits(&[role.to_owned()]) {
                " yes |"
            } else {
                " |"
            };
            text.push_str(mark);
        }
        text.push_str(if route.api_key { " yes |\n" } else { " |\n" });
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = include_str!("../../../docs/access.md");

    #[test]
    fn the_document_is_the_table() {
        let table = markdown();
        assert!(
            DOCUMENT.contains(&table),
            "docs/access.md no longer holds the route table; replace its table with:\n{table}"
        );
    }

    #[test]
    fn no_route_is_listed_twice() {
        for (index, route) in ROUTES.iter().enumerate() {
            let twice = ROUTES[index + 1..]
                .iter()
                .any(|other| other.method == route.method && other.path == route.path);
            assert!(!twice, "{} {} is listed twice", route.method, route.path);
        }
    }

    #[test]
    fn roles_are_checked_by_name() {
        let editor = only("PATCH", "/x", EDITOR).allowed;
        assert!(editor.admits(&["catalogue_editor".to_owned()]));
        assert!(!editor.admits(&["adviser".to_owned(), "ambassador".to_owned()]));
        assert!(Allowed::AnyRole.admits(&["operator".to_owned()]));
        assert!(!Allowed::AnyRole.admits(&["root".to_owned()]));
        assert!(!Allowed::AnyRole.admits(&[]));
    }
}
