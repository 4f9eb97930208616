//! The web app (`api/web/`, built by Vite into `api/web/dist`) served at `/`: its files
//! are embedded in release builds (debug builds read them from the checkout, so a rebuilt
//! app needs no recompiling), every other path that is not the API's answers the app's
//! page (its own router reads the address). Plus what the app needs before anyone is
//! signed in: how to sign in (`GET /v1/app/config`) and, for development only,
//! `POST /v1/dev/login`.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use collab_domain::{InvalidValue, UserId};
use serde::{Deserialize, Serialize};
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(rust_embed::Embed)]
#[folder = "web/dist/"]
#[allow_missing = true]
struct Assets;

/// How people sign in to the web app.
#[derive(Debug, Clone, Default)]
pub struct WebSettings {
    /// `collab serve --dev-login`: anyone signs in under any name (development only; the
    /// binary refuses it without an HS256 secret or on a non-loopback address).
    pub dev_login: bool,
    /// OpenID Connect sign-in (authorisation code flow with PKCE) in the browser.
    pub oidc: Option<OidcClient>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OidcClient {
    /// The issuer (its `/.well-known/openid-configuration` is read by the browser).
    pub issuer: String,
    /// The web app's client id at that issuer (a public client: no secret).
    pub client_id: String,
}

/// Development tokens last a working day.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);
const DEV_NAME_MAX_CHARS: usize = 60;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(app_config))
        .routes(routes!(dev_login))
}

#[derive(Serialize, ToSchema)]
struct AppConfig {
    /// Whether `POST /v1/dev/login` is on.
    dev_login: bool,
    /// OpenID Connect sign-in, when configured.
    oidc: Option<OidcClient>,
}

/// How to sign in to this server (no token needed).
#[utoipa::path(
    get,
    path = "/v1/app/config",
    tag = "web",
    security(()),
    responses((status = 200, description = "Sign-in options", body = AppConfig))
)]
async fn app_config(State(state): State<AppState>) -> Json<AppConfig> {
    Json(AppConfig {
        dev_login: state.web.dev_login,
        oidc: state.web.oidc.clone(),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DevLoginBody {
    /// Any name, 1–60 characters.
    name: String,
}

#[derive(Serialize, ToSchema)]
struct DevLogin {
    /// An HS256 token for the API and the sync socket.
    token: String,
    /// `dev-` and the name in lower case, runs of other characters as `-`.
    user_id: String,
    name: String,
    /// Seconds the token is valid.
    expires_in: u64,
}

/// Development sign-in: a token for anyone under any name. Only when the server runs with
/// `--dev-login` (else 404 `development sign-in not found`).
#[utoipa::path(
    post,
    path = "/v1/dev/login",
    tag = "web",
    security(()),
    request_body = DevLoginBody,
    responses(
        (status = 200, description = "Signed in", body = DevLogin),
        (status = 400, description = "The body is not JSON", body = crate::openapi::ErrorBody),
        (status = 404, description = "Development sign-in is off", body = crate::openapi::ErrorBody),
        (status = 413, description = "The body is larger than the server takes", body = crate::openapi::ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = crate::openapi::ErrorBody),
        (status = 422, description = "JSON of the wrong shape, or a name refused", body = crate::openapi::ErrorBody)
    )
)]
async fn dev_login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DevLoginBody>,
) -> Result<Json<DevLogin>, ApiError> {
    // Off: a 404 that says what is missing (not the router's "route not found").
    if !state.web.dev_login {
        return Err(ApiError::NotFound("development sign-in"));
    }
    let name = body.name.trim().to_owned();
    let user = dev_user_id(&name)?;
    let token = state
        .tokens
        .mint_named(&user, DEV_TOKEN_TTL, &name)
        .ok_or(ApiError::NotFound("development sign-in"))?;
    Ok(Json(DevLogin {
        token,
        user_id: user.to_string(),
        name,
        expires_in: DEV_TOKEN_TTL.as_secs(),
    }))
}

/// `Ada Lovelace` → `dev-ada-lovelace`: the same name is the same person every time.
fn dev_user_id(name: &str) -> Result<UserId, InvalidValue> {
    let invalid = |reason: &str| InvalidValue::new("name", reason);
    let chars = name.chars().count();
    if chars == 0 || chars > DEV_NAME_MAX_CHARS {
        return Err(invalid(&format!(
            "must be 1–{DEV_NAME_MAX_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    let mut slug = String::from("dev-");
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug == "dev" {
        return Err(invalid("must contain a letter or a digit"));
    }
    UserId::parse(slug).map_err(|e| invalid(&e.reason))
}

/// Every request no API route took: the app's files, or its page for the app's own
/// addresses (`/d/{id}`); API-looking paths keep the JSON 404.
pub async fn fallback(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path();
    let api_path = path.starts_with("/v1/")
        || matches!(path, "/v1" | "/healthz" | "/readyz" | "/metrics" | "/docs");
    if api_path || !matches!(*request.method(), Method::GET | Method::HEAD) {
        return ApiError::NotFound("route").into_response();
    }
    let name = path.trim_start_matches('/');
    let (name, file) = match Assets::get(name) {
        Some(file) if !name.is_empty() => (name, file),
        // A file name that is not there (an old build's asset) is a 404, not the page.
        _ if name
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains('.')) =>
        {
            return ApiError::NotFound("file").into_response()
        }
        _ => match Assets::get("index.html") {
            Some(file) => ("index.html", file),
            None => return not_built(),
        },
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(file.metadata.mimetype())
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex"));
    // Vite names what it builds under assets/ by content: those never change.
    let cache = if name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if name == "index.html" {
        let policy = content_security_policy(&state, request.headers());
        if let Ok(value) = HeaderValue::from_str(&policy) {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    let matches = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    if matches {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    if request.method() == Method::HEAD {
        return (headers, ()).into_response();
    }
    (headers, file.data.into_owned()).into_response()
}

/// Gzip for the app's files (what a browser loads first: the script is about 580 KB, 190 KB
/// gzipped) — only for their types: API responses, event streams and downloads are left as
/// they are.
pub fn compression() -> tower_http::compression::CompressionLayer<impl Predicate> {
    tower_http::compression::CompressionLayer::new()
        .gzip(true)
        .compress_when(DefaultPredicate::new().and(
            |_: StatusCode,
             _: axum::http::Version,
             headers: &HeaderMap,
             _: &axum::http::Extensions| {
                headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|t| {
                        matches!(
                            t,
                            "text/javascript"
                                | "text/css"
                                | "text/html"
                                | "image/svg+xml"
                                | "application/manifest+json"
                        )
                    })
            },
        ))
}

/// Scripts and styles from this server only; sockets to this host; images also from the
/// object store's presigned addresses; no framing.
fn content_security_policy(state: &AppState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        });
    let mut connect = vec!["'self'".to_owned()];
    if let Some(host) = host {
        connect.push(format!("ws://{host}"));
        connect.push(format!("wss://{host}"));
    }
    if let Some(oidc) = &state.web.oidc {
        if let Some(origin) = origin_of(&oidc.issuer) {
            connect.push(origin);
        }
    }
    let mut images = vec!["'self'".to_owned(), "data:".into(), "blob:".into()];
    // Uploads go to, and downloads and thumbnails come from, presigned object-store URLs.
    if let Some(s3) = &state.files.s3 {
        let origin = match s3.endpoint.as_deref() {
            Some(endpoint) => origin_of(endpoint),
            None => Some("https://*.amazonaws.com".to_owned()),
        };
        if let Some(origin) = origin {
            connect.push(origin.clone());
            images.push(origin);
        }
    }
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src {}; connect-src {}; worker-src 'self'; manifest-src 'self'; \
         base-uri 'self'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
        images.join(" "),
        connect.join(" ")
    )
}

/// `https://idp.example.com/realms/x` → `https://idp.example.com`.
fn origin_of(url: &str) -> Option<String> {
    let uri: axum::http::Uri = url.parse().ok()?;
    let scheme = uri
        .scheme_str()
        .filter(|s| matches!(*s, "http" | "https"))?;
    Some(format!("{scheme}://{}", uri.authority()?))
}

fn not_built() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "The web app is not built. Run ops/dev/web.sh (ops/dev/serve.sh and ops/dev/test.sh \
         do), then reload.\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_names_become_stable_user_ids() {
        assert_eq!(
            dev_user_id("Ada Lovelace").unwrap().to_string(),
            "dev-ada-lovelace"
        );
        assert_eq!(dev_user_id("  bob  ").unwrap().to_string(), "dev-bob");
        assert_eq!(
            dev_user_id("Zoë O'Neil").unwrap().to_string(),
            "dev-zoë-o-neil"
        );
        assert!(dev_user_id("").is_err());
        assert!(dev_user_id("!!!").is_err());
        assert!(dev_user_id("a\u{7}b").is_err());
        assert!(dev_user_id(&"x".repeat(61)).is_err());
    }

    #[test]
    fn origins_are_scheme_and_authority() {
        assert_eq!(
            origin_of("https://idp.example.com/realms/x").as_deref(),
            Some("https://idp.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:9000").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(origin_of("javascript:alert(1)"), None);
        assert_eq!(origin_of("not a url"), None);
    }
}
