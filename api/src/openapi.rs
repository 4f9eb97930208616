//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and
//! the types they take and return. Every route is registered through `utoipa_axum`'s
//! `routes!`, which reads the method and path from the same annotation, so the router and
//! the document cannot disagree; `tests/tests/suite/openapi.rs` checks both ways.
//!
//! Served as `GET /v1/openapi.json`, and as a reference page at `GET /docs` rendered here
//! from the document (one HTML page, no scripts, no outside assets).

use std::fmt::Write as _;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Every error the API answers with: a stable machine-readable `code`, a message for
/// people, and details that depend on the code.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// E.g. `invalid_parameter`, `not_found`, `version_conflict`.
    pub code: String,
    pub message: String,
    /// Depends on `code` (e.g. `parameter` and `reason` for `invalid_parameter`).
    #[schema(value_type = Object)]
    pub details: Value,
}

/// The answer of a command: its own fields and `position`, the global position of its last
/// event (also in `X-Collab-Position`), to pass as `X-Collab-Min-Position` to a later query.
#[derive(Serialize, ToSchema)]
pub struct Committed<T: ToSchema> {
    #[serde(flatten)]
    pub body: T,
    pub position: i64,
}

/// The refusals every authenticated route can answer with.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Refusals {
    /// A malformed parameter or header, or a min position beyond the log's head.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No token, or a forged, expired or revoked one (`WWW-Authenticate: Bearer`).
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// Unknown, or not visible to the caller (deliberately the same answer).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Too many requests for this user or workspace (`Retry-After`).
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// The read models have not reached `X-Collab-Min-Position` in time (`Retry-After`).
    #[response(status = 503)]
    NotYetConsistent(ErrorBody),
}

/// What a command can be refused for besides [`Refusals`].
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum CommandRefusals {
    /// The caller's role does not allow it.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// A conflict: `version_conflict` (the `If-Match` version moved on), a name taken...
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The body is larger than the server takes.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// JSON of the wrong shape (unknown field, wrong type) or a value refused.
    #[response(status = 422)]
    Invalid(ErrorBody),
}

/// A query that only some roles may make.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Forbidden {
    /// The caller's role does not allow it.
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "jwt",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A token from the identity provider (HS256 with COLLAB_JWT_SECRET, or RS256/ES256 from COLLAB_JWKS_URL).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("cfk_<workspace>_<account>_<secret>")
                    .description(Some(
                        "A service account's API key (`POST /v1/workspaces/{ws}/service-accounts`), sent as a bearer token.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Candlefish Collab",
        description = "Event-sourced real-time collaboration: workspaces, documents, live editing over the Yjs sync protocol, history, replay and audit. Every command answers with `position`; send it back as `X-Collab-Min-Position` to read your writes.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&Security),
    security(("jwt" = []), ("api_key" = [])),
    components(schemas(ErrorBody)),
    tags(
        (name = "workspaces", description = "Workspaces, members and service accounts"),
        (name = "documents", description = "Documents, sharing and links"),
        (name = "content", description = "A document's content, updates and presence; the live sync socket"),
        (name = "history", description = "A document's past: points, history list, named versions, restore, diff, blame, export"),
        (name = "profile", description = "Your profile and the erasure of your personal data"),
        (name = "comments", description = "Comment threads anchored in a document's text: replies, resolution, reactions"),
        (name = "notifications", description = "Your notifications (mentions, replies, shares, resolutions), what you read, your preferences, the live feed"),
        (name = "files", description = "Files uploaded straight to object storage, checked by content, with thumbnails; attachments to documents"),
        (name = "assets", description = "The brand portal: asset collections, tags, the asset library, templates, the download center"),
        (name = "webhooks", description = "Endpoints subscribed to a workspace's events: signed deliveries, attempts, retries"),
        (name = "search", description = "Full-text search"),
        (name = "graphql", description = "The GraphQL endpoint (schema: docs/schema.graphql)"),
        (name = "events", description = "Replay and live tails for consumers; the event catalogue"),
        (name = "audit", description = "Audit trail, verification and signed exports"),
        (name = "web", description = "What the web app needs before anyone is signed in: sign-in options, development sign-in"),
        (name = "operations", description = "Health, readiness, metrics, this document")
    )
)]
struct ApiDoc;

static DOCUMENT: OnceLock<Document> = OnceLock::new();

/// The routes of this module (the document itself and its reference page).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .routes(routes!(docs))
}

/// The empty router every route is added to, carrying the document's header.
pub fn base() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
}

/// Keeps the document the router was built with, for the two routes below.
pub fn publish(document: Document) -> &'static Document {
    DOCUMENT.get_or_init(|| document)
}

/// The document of the router as built by [`crate::routes::router`].
pub fn document() -> Document {
    crate::routes::api_router().split_for_parts().1
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
async fn openapi_json() -> Response {
    let document = DOCUMENT.get_or_init(document);
    ([(header::CACHE_CONTROL, "no-cache")], axum::Json(document)).into_response()
}

/// A reference page of every route, rendered from this document.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The API reference as one HTML page", content_type = "text/html", body = String))
)]
async fn docs() -> Html<String> {
    static PAGE: OnceLock<String> = OnceLock::new();
    Html(
        PAGE.get_or_init(|| render(DOCUMENT.get_or_init(document)))
            .clone(),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A short description of a schema: its type, or the name it refers to.
fn schema_label(schema: &Value) -> String {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("<a href=\"#schema-{0}\">{0}</a>", escape(name));
    }
    if let Some(items) = schema.get("items") {
        return format!("array of {}", schema_label(items));
    }
    for combinator in ["allOf", "oneOf", "anyOf"] {
        if let Some(parts) = schema.get(combinator).and_then(Value::as_array) {
            let labels: Vec<String> = parts.iter().map(schema_label).collect();
            return labels.join(if combinator == "allOf" { " + " } else { " | " });
        }
    }
    let mut label = match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".into(),
    };
    if let Some(format) = schema.get("format").and_then(Value::as_str) {
        let _ = write!(label, " ({format})");
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let _ = write!(label, ": {}", escape(&values.join(", ")));
    }
    label
}

/// The reference page: operations by tag, then the schemas.
fn render(document: &Document) -> String {
    let json = serde_json::to_value(document).unwrap_or(Value::Null);
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Candlefish Collab API</title><style>\
         body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#1c1c1c}\
         code,pre{font:13px ui-monospace,monospace}h2{border-bottom:1px solid #ddd;margin-top:2.5rem}\
         .op{border:1px solid #e3e3e3;border-radius:6px;padding:.6rem 1rem;margin:.8rem 0}\
         .m{display:inline-block;min-width:4.5rem;font-weight:700;text-transform:uppercase}\
         table{border-collapse:collapse;margin:.4rem 0}td,th{border:1px solid #e3e3e3;padding:.2rem .5rem;text-align:left;vertical-align:top}\
         .muted{color:#666}</style></head><body>",
    );
    let info = &json["info"];
    let _ = write!(
        page,
        "<h1>{}</h1><p>{}</p><p class=\"muted\">OpenAPI {} · the machine-readable document: \
         <a href=\"/v1/openapi.json\">/v1/openapi.json</a></p>",
        escape(info["title"].as_str().unwrap_or("")),
        escape(info["description"].as_str().unwrap_or("")),
        escape(json["openapi"].as_str().unwrap_or("")),
    );
    let tags: Vec<(String, String)> = json["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or("").to_owned(),
                        t["description"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let paths = json["paths"].as_object().cloned().unwrap_or_default();
    for (tag, description) in &tags {
        let _ = write!(
            page,
            "<h2 id=\"tag-{0}\">{0}</h2><p>{1}</p>",
            escape(tag),
            escape(description)
        );
        for (path, item) in &paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, operation) in item {
                let in_tag = operation["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t.as_str() == Some(tag)));
                if !in_tag {
                    continue;
                }
                render_operation(&mut page, method, path, operation);
            }
        }
    }
    page.push_str("<h2 id=\"schemas\">Schemas</h2>");
    if let Some(schemas) = json["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            let _ = write!(
                page,
                "<div class=\"op\" id=\"schema-{0}\"><strong>{0}</strong> <span class=\"muted\">{1}</span>",
                escape(name),
                escape(schema["description"].as_str().unwrap_or(""))
            );
            if let Some(properties) = schema["properties"].as_object() {
                let required: Vec<&str> = schema["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                page.push_str("<table>");
                for (field, property) in properties {
                    let _ = write!(
                        page,
                        "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
                        escape(field),
                        if required.contains(&field.as_str()) {
                            ""
                        } else {
                            "?"
                        },
                        schema_label(property),
                        escape(property["description"].as_str().unwrap_or(""))
                    );
                }
                page.push_str("</table>");
            } else {
                let _ = write!(page, " — {}", schema_label(schema));
            }
            page.push_str("</div>");
        }
    }
    page.push_str("</body></html>");
    page
}

fn render_operation(page: &mut String, method: &str, path: &str, operation: &Value) {
    let _ = write!(
        page,
        "<div class=\"op\"><span class=\"m\">{}</span> <code>{}</code><p>{}</p>",
        escape(method),
        escape(path),
        escape(
            operation["description"]
                .as_str()
                .or(operation["summary"].as_str())
                .unwrap_or("")
        )
    );
    if let Some(parameters) = operation["parameters"].as_array() {
        page.push_str("<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>");
        for parameter in parameters {
            let _ = write!(
                page,
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(parameter["name"].as_str().unwrap_or("")),
                if parameter["required"] == true {
                    ""
                } else {
                    "?"
                },
                escape(parameter["in"].as_str().unwrap_or("")),
                schema_label(&parameter["schema"]),
                escape(parameter["description"].as_str().unwrap_or(""))
            );
        }
        page.push_str("</table>");
    }
    if let Some(content) = operation["requestBody"]["content"].as_object() {
        for (media, body) in content {
            let _ = write!(
                page,
                "<p>Body <code>{}</code>: {}</p>",
                escape(media),
                schema_label(&body["schema"])
            );
        }
    }
    if let Some(responses) = operation["responses"].as_object() {
        page.push_str("<table><tr><th>status</th><th>body</th><th></th></tr>");
        for (status, response) in responses {
            let body = response["content"]
                .as_object()
                .map(|content| {
                    content
                        .iter()
                        .map(|(media, c)| {
                            format!(
                                "<code>{}</code> {}",
                                escape(media),
                                schema_label(&c["schema"])
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("<br>")
                })
                .unwrap_or_default();
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(status),
                body,
                escape(response["description"].as_str().unwrap_or(""))
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</div>");
}
