//! Public keys from a JSON Web Key Set (RFC 7517), read from a file or fetched from a URL,
//! kept in memory and refreshed.
//!
//! The set is re-read when it is older than the refresh interval (in the background: the
//! request in hand goes on with the keys it has) and when a token names a key id the set
//! does not hold (a key rotation: that request waits for the new set). Re-reading is never
//! started more often than the refetch floor allows, so a flood of tokens with made-up key
//! ids costs the key host one request per floor interval at most; and one fetch runs at a
//! time, the others waiting for its result.
//!
//! Only signing keys for the algorithms accepted here are taken: RSA keys for RS256 and
//! P-256 keys for ES256. A key whose `alg` names another algorithm, an encryption key
//! (`"use": "enc"`), a symmetric key and a key this library cannot read are skipped (and
//! logged), so one odd entry does not make the whole set unusable.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::error::{Error, Result};

/// The largest key set accepted, in bytes.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Where the key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JwksSource {
    /// A file, re-read on refresh (replace it to rotate keys).
    File(PathBuf),
    /// An `http(s)` URL.
    Url(String),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Url(url) => write!(f, "URL {url}"),
        }
    }
}

/// How often the key set is re-read, at most and at least.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JwksTiming {
    /// Re-read a set older than this.
    pub(crate) refresh: Duration,
    /// Never start two reads closer together than this.
    pub(crate) min_refetch: Duration,
    /// How long one fetch from a URL may take.
    pub(crate) fetch_timeout: Duration,
}

struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_success: Option<Instant>,
}

/// Why no key was found for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyProblem {
    /// The set holds no key for this id and algorithm (after re-reading it if allowed).
    Unknown,
    /// The set has never been read: the key host is down or the file unreadable.
    Unavailable,
}

/// The cached key set.
pub(crate) struct Jwks {
    source: JwksSource,
    client: Option<reqwest::Client>,
    timing: JwksTiming,
    keys: RwLock<Arc<Vec<Key>>>,
    fetch: tokio::sync::Mutex<FetchState>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("source", &self.source)
            .field("timing", &self.timing)
            .field("keys", &self.current().len())
            .finish_non_exhaustive()
    }
}

impl Jwks {
    /// A key set from `source`; a file is read now (so a bad file fails at startup), a URL
    /// on first use or [`Jwks::refresh_now`].
    pub(crate) fn new(source: JwksSource, timing: JwksTiming) -> Result<Self> {
        let client = match &source {
            JwksSource::File(_) => None,
            JwksSource::Url(url) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(Error::Config(format!(
                        "the JWKS URL must be http(s)://...: {url}"
                    )));
                }
                Some(
                    reqwest::Client::builder()
                        .timeout(timing.fetch_timeout)
                        .build()
                        .map_err(|e| Error::Config(format!("JWKS HTTP client: {e}")))?,
                )
            }
        };
        let jwks = Self {
            source,
            client,
            timing,
            keys: RwLock::new(Arc::new(Vec::new())),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        };
        if let JwksSource::File(path) = &jwks.source {
            let bytes = std::fs::read(path).map_err(|e| {
                Error::Jwks(format!("cannot read the JWKS file {}: {e}", path.display()))
            })?;
            let keys = parse(&bytes)?;
            jwks.install(keys);
            // Nobody else holds the new value's lock yet.
            if let Ok(mut state) = jwks.fetch.try_lock() {
                let now = Instant::now();
                state.last_attempt = Some(now);
                state.last_success = Some(now);
            }
        }
        Ok(jwks)
    }

    fn current(&self) -> Arc<Vec<Key>> {
        self.keys.read().map_or_else(
            |poisoned| poisoned.into_inner().clone(),
            |keys| keys.clone(),
        )
    }

    fn install(&self, keys: Vec<Key>) {
        let keys = Arc::new(keys);
        match self.keys.write() {
            Ok(mut slot) => *slot = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
    }

    /// The number of usable keys held now.
    pub(crate) fn len(&self) -> usize {
        self.current().len()
    }

    /// The key for a token's `kid` and algorithm. A token without `kid` is matched when the
    /// set holds exactly one key for its algorithm.
    fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<DecodingKey> {
        let keys = self.current();
        let mut fitting = keys.iter().filter(|key| key.algorithm == algorithm);
        match kid {
            Some(kid) => fitting
                .find(|key| key.kid.as_deref() == Some(kid))
                .map(|key| key.key.clone()),
            None => match (fitting.next(), fitting.next()) {
                (Some(only), None) => Some(only.key.clone()),
                _ => None,
            },
        }
    }

    /// The key to verify a token with; see the module docs for when the set is re-read.
    pub(crate) async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<DecodingKey, KeyProblem> {
        if let Some(key) = self.find(kid, algorithm) {
            if self.is_stale() {
                let jwks = self.clone();
                tokio::spawn(async move { jwks.refresh().await });
            }
            return Ok(key);
        }
        let loaded = self.refresh().await;
        match self.find(kid, algorithm) {
            Some(key) => Ok(key),
            None if loaded => Err(KeyProblem::Unknown),
            None => Err(KeyProblem::Unavailable),
        }
    }

    fn is_stale(&self) -> bool {
        match self.fetch.try_lock() {
            Ok(state) => state
                .last_success
                .is_none_or(|at| at.elapsed() >= self.timing.refresh),
            // A fetch is running.
            Err(_) => false,
        }
    }

    /// Re-reads the set now, whatever the floor says; for startup checks.
    pub(crate) async fn refresh_now(&self) -> Result<usize> {
        let mut state = self.fetch.lock().await;
        state.last_attempt = Some(Instant::now());
        let keys = self.load().await?;
        let count = keys.len();
        self.install(keys);
        state.last_success = Some(Instant::now());
        Ok(count)
    }

    /// Re-reads the set unless a read started within the floor (then waits for a running
    /// one). Returns whether the set has ever been read.
    async fn refresh(&self) -> bool {
        let mut state = self.fetch.lock().await;
        let recent = state
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.timing.min_refetch);
        if !recent {
            state.last_attempt = Some(Instant::now());
            match self.load().await {
                Ok(keys) => {
                    tracing::info!(source = %self.source, keys = keys.len(), "JWKS loaded");
                    self.install(keys);
                    state.last_success = Some(Instant::now());
                }
                Err(error) => {
                    tracing::warn!(source = %self.source, %error, "cannot refresh the JWKS; keeping the keys held");
                }
            }
        }
        state.last_success.is_some()
    }

    async fn load(&self) -> Result<Vec<Key>> {
        let bytes = match (&self.source, &self.client) {
            (JwksSource::File(path), _) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || std::fs::read(&path))
                    .await
                    .map_err(|e| Error::Jwks(format!("reading the JWKS file: {e}")))?
                    .map_err(|e| Error::Jwks(format!("cannot read the JWKS file: {e}")))?
            }
            (JwksSource::Url(url), Some(client)) => fetch(client, url).await?,
            (JwksSource::Url(_), None) => {
                return Err(Error::Jwks("no HTTP client for the JWKS URL".to_owned()));
            }
        };
        parse(&bytes)
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>> {
    let failed = |e: reqwest::Error| Error::Jwks(format!("cannot fetch the JWKS from {url}: {e}"));
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(failed)?
        .error_for_status()
        .map_err(failed)?;
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if bytes.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(Error::Jwks(format!(
                "the JWKS at {url} is larger than {MAX_JWKS_BYTES} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The usable keys of a JWKS document (see the module docs); a document that is not a key
/// set is an error.
fn parse(bytes: &[u8]) -> Result<Vec<Key>> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(bytes)
        .map_err(|e| Error::Jwks(format!("not a JWKS document ({{\"keys\": [...]}}): {e}")))?;
    let mut keys = Vec::new();
    for value in document.keys {
        let jwk: Jwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(error) => {
                tracing::warn!(%error, "skipping a JWKS entry this server cannot read");
                continue;
            }
        };
        let kid = jwk.common.key_id.clone();
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                if ec.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            _ => {
                tracing::warn!(kid = ?kid, "skipping a JWKS key: not an RS256 or ES256 signing key");
                continue;
            }
        };
        match DecodingKey::from_jwk(&jwk) {
            Ok(key) => keys.push(Key {
                kid,
                algorithm,
                key,
            }),
            Err(error) => tracing::warn!(kid = ?kid, %error, "skipping an unreadable JWKS key"),
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_entries_are_skipped_and_a_non_set_is_an_error() {
        let doc = br#"{"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "enc", "use": "enc"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "ps", "alg": "PS256"},
            {"kty": "nonsense"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "ok"}
        ]}"#;
        let keys = parse(doc).unwrap_or_default();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("ok")]);
        assert!(matches!(parse(b"[]"), Err(Error::Jwks(_))));
        assert!(matches!(parse(b"{}"), Err(Error::Jwks(_))));
    }
}
