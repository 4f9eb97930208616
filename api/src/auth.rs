//! Bearer tokens: HS256 JWTs signed with the configured secret. (A fuller identity
//! layer — JWKS, RS256/ES256, service accounts — is its own issue.)

use std::time::Duration;

use collab_domain::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
    /// Marks a connection read-only (until document permissions land).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    read_only: bool,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub user: UserId,
    pub read_only: bool,
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

/// Verifies (and, for development, mints) tokens. Only HS256 is accepted: the algorithm
/// comes from our configuration, never from the token's header.
pub struct TokenVerifier {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
}

impl TokenVerifier {
    pub fn hs256(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_aud = false;
        Self {
            decoding: DecodingKey::from_secret(bytes),
            encoding: EncodingKey::from_secret(bytes),
            validation,
        }
    }

    pub fn verify(&self, token: &str) -> Result<UserId, AuthError> {
        self.verify_token(token).map(|t| t.user)
    }

    pub fn verify_token(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        Ok(VerifiedToken {
            user: UserId::parse(data.claims.sub).map_err(|_| AuthError::Invalid)?,
            read_only: data.claims.read_only,
        })
    }

    /// Verifies an `Authorization` header value.
    pub fn verify_header(&self, header: Option<&str>) -> Result<UserId, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Malformed)?;
        self.verify(token)
    }

    pub fn mint(&self, user: &UserId, ttl: Duration) -> String {
        self.mint_with(user, ttl, false)
    }

    /// A token whose sockets are read-only when `read_only`.
    pub fn mint_with(&self, user: &UserId, ttl: Duration, read_only: bool) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.to_string(),
            iat: now,
            exp: now + ttl.as_secs(),
            read_only,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(secret: &str) -> TokenVerifier {
        TokenVerifier::hs256(&SecretString::from(secret.to_owned()))
    }

    #[test]
    fn minted_tokens_verify_and_others_do_not() {
        let alice = UserId::parse("alice").unwrap();
        let token = verifier("s1").mint(&alice, Duration::from_secs(60));
        assert_eq!(verifier("s1").verify(&token).unwrap(), alice);
        assert_eq!(verifier("s2").verify(&token), Err(AuthError::Invalid));
        assert_eq!(verifier("s1").verify("garbage"), Err(AuthError::Invalid));
        assert_eq!(
            verifier("s1").verify_header(Some("Basic abc")),
            Err(AuthError::Malformed)
        );
        assert_eq!(verifier("s1").verify_header(None), Err(AuthError::Missing));
    }

    #[test]
    fn unsigned_tokens_are_refused() {
        // {"alg":"none"} . {"sub":"alice","exp":9999999999,"iat":0} . (no signature)
        let token = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.\
                     eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OSwiaWF0IjowfQ.";
        assert_eq!(verifier("s1").verify(token), Err(AuthError::Invalid));
    }
}
