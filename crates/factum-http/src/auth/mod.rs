//! Authentication: who is calling, from a bearer JSON Web Token.
//!
//! [`JwtAuth`] verifies tokens signed with a shared secret (HS256) and/or with keys from a
//! JSON Web Key Set (RS256, ES256; see [`JwtAuthBuilder::jwks_file`] and
//! [`JwtAuthBuilder::jwks_url`]). A token must carry `exp` and a non-empty `sub` (the user
//! recorded in every event's metadata), and is refused before its `nbf`; with an issuer or an audience configured, `iss` or
//! `aud` must be present and match. The token's algorithm must be one the configuration
//! has keys for: an HS256 token is refused by a JWKS-only server and an RS256 token by a
//! secret-only one, so a public key can never be used as an HMAC secret.
//!
//! The caller's roles (or scopes) come from one claim, `roles` unless configured: an array
//! of strings, or one space-separated string (as OAuth's `scope`). A dotted name
//! (`realm_access.roles`) reaches into nested objects when no claim has that exact name.
//!
//! [`Api`](crate::Api) applies authentication as a layer over every route but the public
//! ones (see [`HttpConfig::with_auth`](crate::HttpConfig::with_auth)).

mod jwks;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::error::{Error, Result};
use jwks::{Jwks, JwksSource, JwksTiming, KeyProblem};

/// The claim holding the roles unless configured.
pub const DEFAULT_ROLES_CLAIM: &str = "roles";
/// How often a JWKS is re-read unless configured.
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);
/// The shortest time between two reads of a JWKS unless configured.
pub const DEFAULT_JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);

/// Who a valid token says is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`.
    pub user: String,
    /// The roles (or scopes) of the configured claim.
    pub roles: BTreeSet<String>,
}

/// Why a request has no verified caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRejection {
    /// No valid token (401): missing, malformed, forged, expired, wrong issuer or audience.
    Invalid(&'static str),
    /// The keys to verify the token cannot be read (503): the JWKS host is down and no key
    /// set was ever loaded.
    KeysUnavailable,
}

/// Verifies bearer JWTs; see the module docs. Build one with [`JwtAuth::hs256`] or
/// [`JwtAuth::builder`].
#[derive(Clone)]
pub struct JwtAuth {
    secret: Option<DecodingKey>,
    jwks: Option<Arc<Jwks>>,
    issuer: Option<String>,
    audience: Option<String>,
    roles_claim: String,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed.
        f.debug_struct("JwtAuth")
            .field("hs256", &self.secret.is_some())
            .field("jwks", &self.jwks)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("roles_claim", &self.roles_claim)
            .finish()
    }
}

/// Configures a [`JwtAuth`]; [`build`](Self::build) checks the whole.
#[derive(Debug, Clone)]
pub struct JwtAuthBuilder {
    secret: Option<Vec<u8>>,
    jwks: Option<JwksSource>,
    issuer: Option<String>,
    audience: Option<String>,
    roles_claim: String,
    timing: JwksTiming,
    conflict: Option<String>,
}

impl JwtAuthBuilder {
    /// Accept HS256 tokens signed with this shared secret (not empty).
    #[must_use]
    pub fn hs256(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

    fn source(mut self, source: JwksSource) -> Self {
        if let Some(earlier) = &self.jwks {
            self.conflict = Some(format!("two JWKS sources: {earlier} and {source}"));
        }
        self.jwks = Some(source);
        self
    }

    /// Accept RS256/ES256 tokens signed with a key of the JWKS in this file (read at
    /// [`build`](Self::build), re-read on refresh: replace the file to rotate keys).
    #[must_use]
    pub fn jwks_file(self, path: impl Into<PathBuf>) -> Self {
        self.source(JwksSource::File(path.into()))
    }

    /// Accept RS256/ES256 tokens signed with a key of the JWKS at this URL (fetched on first
    /// use or by [`JwtAuth::load_keys`], then cached and refreshed).
    #[must_use]
    pub fn jwks_url(self, url: impl Into<String>) -> Self {
        self.source(JwksSource::Url(url.into()))
    }

    factum_core::setters! {
        /// Require `iss` to be this issuer.
        pub fn issuer(issuer: impl Into<String>) => issuer = Some(issuer.into());
        /// Require `aud` to name this audience.
        pub fn audience(audience: impl Into<String>) => audience = Some(audience.into());
        /// The claim holding the roles or scopes (default [`DEFAULT_ROLES_CLAIM`]).
        pub fn roles_claim(claim: impl Into<String>) => roles_claim = claim.into();
        /// How often the JWKS is re-read (default [`DEFAULT_JWKS_REFRESH`]).
        pub fn jwks_refresh(every: Duration) => timing.refresh = every;
        /// The shortest time between two reads of the JWKS, whatever tokens arrive (default
        /// [`DEFAULT_JWKS_MIN_REFETCH`]).
        pub fn jwks_min_refetch(floor: Duration) => timing.min_refetch = floor;
        /// How long one fetch of a JWKS URL may take (default 5 s).
        pub fn jwks_fetch_timeout(timeout: Duration) => timing.fetch_timeout = timeout;
    }

    /// The verifier, or why this configuration cannot work: no key source, an empty secret,
    /// two JWKS sources, an empty issuer, audience or roles claim, a JWKS file that cannot be
    /// read, a URL that is not `http(s)`.
    pub fn build(self) -> Result<JwtAuth> {
        if let Some(conflict) = self.conflict {
            return Err(Error::Config(conflict));
        }
        if self.secret.is_none() && self.jwks.is_none() {
            return Err(Error::Config(
                "JWT auth needs an HS256 secret or a JWKS (file or URL)".to_owned(),
            ));
        }
        if self.secret.as_ref().is_some_and(Vec::is_empty) {
            return Err(Error::Config("the JWT secret must not be empty".to_owned()));
        }
        for (what, value) in [("issuer", &self.issuer), ("audience", &self.audience)] {
            if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
                return Err(Error::Config(format!("the JWT {what} must not be empty")));
            }
        }
        if self.roles_claim.trim().is_empty() {
            return Err(Error::Config(
                "the roles claim must not be empty".to_owned(),
            ));
        }
        if self.timing.min_refetch > self.timing.refresh {
            return Err(Error::Config(
                "the JWKS refetch floor must not exceed its refresh interval".to_owned(),
            ));
        }
        let jwks = match self.jwks {
            Some(source) => Some(Arc::new(Jwks::new(source, self.timing)?)),
            None => None,
        };
        Ok(JwtAuth {
            secret: self.secret.as_deref().map(DecodingKey::from_secret),
            jwks,
            issuer: self.issuer,
            audience: self.audience,
            roles_claim: self.roles_claim,
        })
    }
}

impl JwtAuth {
    /// A builder with nothing configured.
    pub fn builder() -> JwtAuthBuilder {
        JwtAuthBuilder {
            secret: None,
            jwks: None,
            issuer: None,
            audience: None,
            roles_claim: DEFAULT_ROLES_CLAIM.to_owned(),
            timing: JwksTiming {
                refresh: DEFAULT_JWKS_REFRESH,
                min_refetch: DEFAULT_JWKS_MIN_REFETCH,
                fetch_timeout: Duration::from_secs(5),
            },
            conflict: None,
        }
    }

    /// A verifier for tokens signed with this shared secret (HS256). An empty secret is an
    /// error: it would accept tokens anyone can forge.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Self> {
        Self::builder().hs256(secret).build()
    }

    /// Reads the JWKS now (a URL is otherwise fetched on first use) and returns how many
    /// usable keys it holds: call it at startup to fail early on a wrong URL. Without a
    /// JWKS, `Ok(0)`.
    pub async fn load_keys(&self) -> Result<usize> {
        match &self.jwks {
            Some(jwks) => jwks.refresh_now().await,
            None => Ok(0),
        }
    }

    /// The number of JWKS keys held now.
    pub fn jwks_keys(&self) -> usize {
        self.jwks.as_ref().map_or(0, |jwks| jwks.len())
    }

    /// The caller a token names, or why it is not accepted.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthRejection> {
        use AuthRejection::Invalid;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Invalid("the token is not a valid JWT"))?;
        let key = match header.alg {
            Algorithm::HS256 => self.secret.clone().ok_or(Invalid(
                "the token is signed with HS256, which this server does not accept",
            ))?,
            Algorithm::RS256 | Algorithm::ES256 => {
                let Some(jwks) = &self.jwks else {
                    return Err(Invalid(
                        "the token is signed with a public-key algorithm this server does not accept",
                    ));
                };
                jwks.key_for(header.kid.as_deref(), header.alg)
                    .await
                    .map_err(|problem| match problem {
                        KeyProblem::Unknown => {
                            Invalid("the token's signing key (kid) is not known")
                        }
                        KeyProblem::Unavailable => AuthRejection::KeysUnavailable,
                    })?
            }
            _ => return Err(Invalid("the token's algorithm is not accepted")),
        };
        let mut validation = Validation::new(header.alg);
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // No audience is configured, so a token naming one is not judged on it.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|error| {
            Invalid(match error.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet",
                ErrorKind::InvalidSignature => "the token's signature is not valid",
                ErrorKind::InvalidAlgorithm => "the token's algorithm does not fit its key",
                ErrorKind::InvalidIssuer => "the token's issuer (iss) is not accepted",
                ErrorKind::InvalidAudience => "the token's audience (aud) is not accepted",
                ErrorKind::MissingRequiredClaim(_) => {
                    "the token lacks a required claim (exp, sub, and iss/aud when configured)"
                }
                _ => "the token is not a valid JWT",
            })
        })?;
        let user = match data.claims.get("sub") {
            Some(serde_json::Value::String(sub)) if !sub.trim().is_empty() => sub.clone(),
            _ => return Err(Invalid("the token's sub is empty")),
        };
        Ok(Principal {
            user,
            roles: roles_of(&data.claims, &self.roles_claim),
        })
    }
}

/// The roles in `claim`: an array of strings or a space-separated string; a dotted name
/// reaches into nested objects when no claim has that exact name.
fn roles_of(claims: &serde_json::Map<String, serde_json::Value>, claim: &str) -> BTreeSet<String> {
    let value = claims.get(claim).or_else(|| {
        let mut parts = claim.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |value, part| value.get(part))
    });
    match value {
        Some(serde_json::Value::String(text)) => {
            text.split_whitespace().map(str::to_owned).collect()
        }
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str())
            .filter(|role| !role.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => BTreeSet::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_that_cannot_work_are_refused() {
        assert!(matches!(JwtAuth::hs256(""), Err(Error::Config(_))));
        assert!(JwtAuth::hs256("s3cret").is_ok());
        assert!(matches!(JwtAuth::builder().build(), Err(Error::Config(_))));
        assert!(matches!(
            JwtAuth::builder().hs256("k").issuer(" ").build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            JwtAuth::builder().jwks_url("ftp://x").build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            JwtAuth::builder()
                .jwks_url("http://a")
                .jwks_url("http://b")
                .build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            JwtAuth::builder()
                .jwks_file("/nonexistent/jwks.json")
                .build(),
            Err(Error::Jwks(_))
        ));
    }

    #[test]
    fn roles_come_from_an_array_a_scope_string_or_a_nested_claim() {
        let claims = serde_json::json!({
            "roles": ["admin", "", 7, "teller"],
            "scope": "accounts:read accounts:write",
            "realm_access": {"roles": ["auditor"]},
            "a.b": "dotted"
        });
        let claims = claims.as_object().cloned().unwrap_or_default();
        let set = |names: &[&str]| {
            names
                .iter()
                .map(|n| (*n).to_owned())
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(roles_of(&claims, "roles"), set(&["admin", "teller"]));
        assert_eq!(
            roles_of(&claims, "scope"),
            set(&["accounts:read", "accounts:write"])
        );
        assert_eq!(roles_of(&claims, "realm_access.roles"), set(&["auditor"]));
        assert_eq!(roles_of(&claims, "a.b"), set(&["dotted"]));
        assert!(roles_of(&claims, "missing").is_empty());
    }
}
