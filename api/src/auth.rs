//! Bearer tokens: JWTs verified with HS256 (development: a shared secret) and/or RS256 /
//! ES256 through a JWKS URL (Auth0 or any OIDC issuer), with issuer, audience, exp/nbf and
//! a small leeway. The accepted algorithms come from configuration, never from the token:
//! a token whose header names another algorithm is refused before any key is looked at.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use collab_domain::UserId;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};
use tracing::warn;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    iat: u64,
    /// Marks a connection read-only (until document permissions land).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    read_only: bool,
    /// The person's name (OpenID Connect standard claim): fills their profile at the first
    /// sign-in. Any other type than a string is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<serde_json::Value>,
    /// Their email address (OpenID Connect standard claim), likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<serde_json::Value>,
}

fn string_claim(value: Option<serde_json::Value>) -> Option<String> {
    match value {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub user: UserId,
    pub read_only: bool,
    /// The `name` claim, when a string.
    pub name: Option<String>,
    /// The `email` claim, when a string.
    pub email: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed Authorization header; expected 'Bearer <token>'")]
    Malformed,
    #[error("token has expired")]
    Expired,
    #[error("token is invalid")]
    Invalid,
}

/// How tokens are verified.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// HS256 secret (development, tests, `collab token mint`).
    pub hs256_secret: Option<SecretString>,
    /// Where the issuer publishes its signing keys (RS256/ES256).
    pub jwks_url: Option<String>,
    /// The web app's OpenID Connect provider: its keys are the `jwks_uri` its discovery
    /// document (`/.well-known/openid-configuration`) names, looked up at the first token
    /// (when `jwks_url` is not set), and tokens signed with the provider's keys must come
    /// from it (`iss`) and be for the app (`aud` its client id), unless `issuer` /
    /// `audience` say otherwise. Tokens signed with the HS256 secret are this server's own.
    pub oidc: Option<crate::web::OidcClient>,
    /// Algorithms accepted; anything else is refused.
    pub algorithms: Vec<Algorithm>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    pub leeway_seconds: u64,
}

impl AuthSettings {
    pub fn hs256(secret: &str) -> Self {
        Self {
            hs256_secret: Some(secret.to_owned().into()),
            jwks_url: None,
            oidc: None,
            algorithms: vec![Algorithm::HS256],
            issuer: None,
            audience: None,
            leeway_seconds: crate::settings::defaults::JWT_LEEWAY_SECS,
        }
    }
}

/// Parses `HS256,RS256,ES256`-style lists.
pub fn parse_algorithms(raw: &str) -> Result<Vec<Algorithm>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| match a {
            "HS256" => Ok(Algorithm::HS256),
            "RS256" => Ok(Algorithm::RS256),
            "ES256" => Ok(Algorithm::ES256),
            other => Err(format!(
                "unsupported JWT algorithm '{other}' (HS256, RS256, ES256)"
            )),
        })
        .collect()
}

/// Signing keys fetched from a JWKS URL: cached, refreshed every few minutes, and
/// re-fetched (at most once a second) when a token names an unknown key id — key rotation.
struct JwksCache {
    url: JwksLocation,
    http: reqwest::Client,
    keys: RwLock<(HashMap<String, Jwk>, Option<Instant>)>,
    refresh: Mutex<()>,
}

const JWKS_TTL: Duration = Duration::from_secs(300);
const JWKS_MISS_COOLDOWN: Duration = Duration::from_secs(1);

/// Where the keys are: a URL, or an issuer whose discovery document names it (found once).
enum JwksLocation {
    Url(String),
    Discovered {
        issuer: String,
        url: tokio::sync::OnceCell<String>,
    },
}

impl std::fmt::Display for JwksLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksLocation::Url(url) => f.write_str(url),
            JwksLocation::Discovered { issuer, .. } => write!(f, "the JWKS of {issuer}"),
        }
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl JwksCache {
    async fn url(&self) -> Result<&str, String> {
        match &self.url {
            JwksLocation::Url(url) => Ok(url),
            JwksLocation::Discovered { issuer, url } => url
                .get_or_try_init(|| async {
                    let address = format!("{issuer}/.well-known/openid-configuration");
                    let found: Discovery = self.get_json(&address).await?;
                    // OpenID Connect Discovery 1.0, 4.3: the document is the issuer's own.
                    if found.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
                        return Err(format!(
                            "{address} names issuer {:?}, not {issuer:?}",
                            found.issuer
                        ));
                    }
                    Ok(found.jwks_uri)
                })
                .await
                .map(String::as_str),
        }
    }

    /// A JSON document from the identity provider (5 s at most); errors name the address.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, address: &str) -> Result<T, String> {
        let failed = |e: reqwest::Error| format!("{address}: {e}");
        self.http
            .get(address)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(failed)?
            .error_for_status()
            .map_err(failed)?
            .json()
            .await
            .map_err(failed)
    }

    async fn fetch(&self) -> Result<HashMap<String, Jwk>, String> {
        let set: JwkSet = self.get_json(self.url().await?).await?;
        Ok(set
            .keys
            .into_iter()
            .filter_map(|key| Some((key.common.key_id.clone()?, key)))
            .collect())
    }

    async fn key(&self, kid: &str) -> Option<Jwk> {
        {
            let cache = self.keys.read().await;
            let fresh = cache.1.is_some_and(|at| at.elapsed() < JWKS_TTL);
            if let (true, Some(key)) = (fresh, cache.0.get(kid)) {
                return Some(key.clone());
            }
        }
        let _one_at_a_time = self.refresh.lock().await;
        {
            let cache = self.keys.read().await;
            let recent = cache.1.is_some_and(|at| at.elapsed() < JWKS_MISS_COOLDOWN);
            if recent
                || (cache.1.is_some_and(|at| at.elapsed() < JWKS_TTL) && cache.0.contains_key(kid))
            {
                return cache.0.get(kid).cloned();
            }
        }
        match self.fetch().await {
            Ok(keys) => {
                let mut cache = self.keys.write().await;
                *cache = (keys, Some(Instant::now()));
                cache.0.get(kid).cloned()
            }
            Err(error) => {
                warn!(url = %self.url, %error, "cannot fetch JWKS; keeping the cached keys");
                let mut cache = self.keys.write().await;
                // Back off: count this attempt as a fetch, keep what we had.
                cache.1 = Some(Instant::now() - JWKS_TTL + JWKS_MISS_COOLDOWN);
                cache.0.get(kid).cloned()
            }
        }
    }
}

pub struct TokenVerifier {
    hs: Option<(DecodingKey, EncodingKey)>,
    jwks: Option<JwksCache>,
    algorithms: Vec<Algorithm>,
    issuer: Option<String>,
    audience: Option<String>,
    /// The web app's provider (its `iss` and client id for tokens signed with its keys).
    provider: Option<crate::web::OidcClient>,
    leeway: u64,
}

impl TokenVerifier {
    pub fn new(settings: &AuthSettings) -> Self {
        Self {
            hs: settings.hs256_secret.as_ref().map(|secret| {
                let bytes = secret.expose_secret().as_bytes();
                (
                    DecodingKey::from_secret(bytes),
                    EncodingKey::from_secret(bytes),
                )
            }),
            jwks: settings
                .jwks_url
                .clone()
                .map(JwksLocation::Url)
                .or_else(|| {
                    settings.oidc.as_ref().map(|oidc| JwksLocation::Discovered {
                        issuer: oidc.issuer.clone(),
                        url: tokio::sync::OnceCell::new(),
                    })
                })
                .map(|url| JwksCache {
                    url,
                    http: reqwest::Client::new(),
                    keys: RwLock::new((HashMap::new(), None)),
                    refresh: Mutex::new(()),
                }),
            algorithms: settings.algorithms.clone(),
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            provider: settings.oidc.clone(),
            leeway: settings.leeway_seconds,
        }
    }

    pub fn hs256(secret: &SecretString) -> Self {
        Self::new(&AuthSettings {
            hs256_secret: Some(secret.clone()),
            ..AuthSettings::hs256("")
        })
    }

    pub async fn verify(&self, token: &str) -> Result<UserId, AuthError> {
        self.verify_token(token).await.map(|t| t.user)
    }

    pub async fn verify_token(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        // The configuration decides what is acceptable; the header only says which of those.
        if !self.algorithms.contains(&header.alg) {
            return Err(AuthError::Invalid);
        }
        let key =
            match header.alg {
                Algorithm::HS256 => self.hs.as_ref().ok_or(AuthError::Invalid)?.0.clone(),
                Algorithm::RS256 | Algorithm::ES256 => {
                    let jwks = self.jwks.as_ref().ok_or(AuthError::Invalid)?;
                    let kid = header.kid.as_deref().ok_or(AuthError::Invalid)?;
                    let jwk = jwks.key(kid).await.ok_or(AuthError::Invalid)?;
                    if jwk.common.key_algorithm.is_some_and(|declared| {
                        format!("{declared:?}") != format!("{:?}", header.alg)
                    }) {
                        return Err(AuthError::Invalid);
                    }
                    DecodingKey::from_jwk(&jwk).map_err(|_| AuthError::Invalid)?
                }
                _ => return Err(AuthError::Invalid),
            };
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        // The provider's tokens are its own and for the app, unless configured otherwise.
        let provider = match header.alg {
            Algorithm::HS256 => None,
            _ => self.provider.as_ref(),
        };
        match self.issuer.as_ref().or(provider.map(|p| &p.issuer)) {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match self.audience.as_ref().or(provider.map(|p| &p.client_id)) {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid,
        })?;
        Ok(VerifiedToken {
            user: UserId::parse(data.claims.sub).map_err(|_| AuthError::Invalid)?,
            read_only: data.claims.read_only,
            name: string_claim(data.claims.name),
            email: string_claim(data.claims.email),
        })
    }

    /// Verifies an `Authorization` header value.
    pub async fn verify_header(&self, header: Option<&str>) -> Result<VerifiedToken, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Malformed)?;
        self.verify_token(token).await
    }

    pub fn mint(&self, user: &UserId, ttl: Duration) -> Option<String> {
        self.mint_with(user, ttl, false)
    }

    /// An HS256 token (when a secret is configured); `read_only` marks its sockets.
    pub fn mint_with(&self, user: &UserId, ttl: Duration, read_only: bool) -> Option<String> {
        self.mint_claims(user, ttl, read_only, None)
    }

    /// An HS256 token carrying the person's name (development sign-in): their profile
    /// takes it at the first sign-in, as from an identity provider's `name` claim.
    pub fn mint_named(&self, user: &UserId, ttl: Duration, name: &str) -> Option<String> {
        self.mint_claims(user, ttl, false, Some(name))
    }

    fn mint_claims(
        &self,
        user: &UserId,
        ttl: Duration,
        read_only: bool,
        name: Option<&str>,
    ) -> Option<String> {
        let (_, encoding) = self.hs.as_ref()?;
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.to_string(),
            iat: now,
            exp: now + ttl.as_secs(),
            read_only,
            name: name.map(|n| serde_json::Value::String(n.to_owned())),
            email: None,
        };
        Some(
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, encoding)
                .expect("HS256 signing cannot fail"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(secret: &str) -> TokenVerifier {
        TokenVerifier::hs256(&SecretString::from(secret.to_owned()))
    }

    #[tokio::test]
    async fn minted_tokens_verify_and_others_do_not() {
        let alice = UserId::parse("alice").unwrap();
        let token = verifier("s1")
            .mint(&alice, Duration::from_secs(60))
            .unwrap();
        assert_eq!(verifier("s1").verify(&token).await.unwrap(), alice);
        assert_eq!(verifier("s2").verify(&token).await, Err(AuthError::Invalid));
        assert_eq!(
            verifier("s1").verify("garbage").await,
            Err(AuthError::Invalid)
        );
        assert_eq!(
            verifier("s1").verify_header(Some("Basic abc")).await,
            Err(AuthError::Malformed)
        );
        assert_eq!(
            verifier("s1").verify_header(None).await,
            Err(AuthError::Missing)
        );
    }

    #[tokio::test]
    async fn unsigned_tokens_are_refused() {
        // {"alg":"none"} . {"sub":"alice","exp":9999999999,"iat":0} . (no signature)
        let token = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.\
                     eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OSwiaWF0IjowfQ.";
        assert_eq!(verifier("s1").verify(token).await, Err(AuthError::Invalid));
    }

    #[test]
    fn algorithm_lists_parse() {
        assert_eq!(
            parse_algorithms("HS256, RS256").unwrap(),
            vec![Algorithm::HS256, Algorithm::RS256]
        );
        assert!(parse_algorithms("none").is_err());
    }
}
