//! Bearer tokens for tests: HS256 tokens signed with a secret, and RS256/ES256 tokens signed
//! with fixed test keys ([`TestKey`], committed under `fixtures/jwt`) whose public halves
//! make a JSON Web Key Set ([`jwks`]).
//!
//! ```
//! use factum_testing::jwt::{TestKey, claims, jwks};
//! let token = TestKey::Rsa1.sign(&claims("alice", 600));
//! assert_eq!(token.split('.').count(), 3);
//! assert_eq!(jwks(&[TestKey::Rsa1, TestKey::Ec1])["keys"][1]["kid"], "ec-1");
//! ```

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A test signing key. Never use these keys outside tests: their private halves are public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKey {
    /// RSA 2048, RS256, `kid` `rsa-1`.
    Rsa1,
    /// RSA 2048, RS256, `kid` `rsa-2`.
    Rsa2,
    /// P-256, ES256, `kid` `ec-1`.
    Ec1,
}

impl TestKey {
    /// The key id its JWK carries.
    pub fn kid(self) -> &'static str {
        match self {
            Self::Rsa1 => "rsa-1",
            Self::Rsa2 => "rsa-2",
            Self::Ec1 => "ec-1",
        }
    }

    /// The algorithm it signs with.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::Rsa1 | Self::Rsa2 => Algorithm::RS256,
            Self::Ec1 => Algorithm::ES256,
        }
    }

    fn private_pem(self) -> &'static str {
        match self {
            Self::Rsa1 => include_str!("../fixtures/jwt/rsa-1.pem"),
            Self::Rsa2 => include_str!("../fixtures/jwt/rsa-2.pem"),
            Self::Ec1 => include_str!("../fixtures/jwt/ec-1.pem"),
        }
    }

    /// The public JWK.
    pub fn public_jwk(self) -> Value {
        let text = match self {
            Self::Rsa1 => include_str!("../fixtures/jwt/rsa-1.jwk.json"),
            Self::Rsa2 => include_str!("../fixtures/jwt/rsa-2.jwk.json"),
            Self::Ec1 => include_str!("../fixtures/jwt/ec-1.jwk.json"),
        };
        serde_json::from_str(text).unwrap_or(Value::Null)
    }

    /// A token with these claims, its header naming this key's `kid`.
    pub fn sign(self, claims: &Value) -> String {
        self.sign_with_kid(Some(self.kid()), claims)
    }

    /// A token with these claims and this `kid` in its header (or none).
    pub fn sign_with_kid(self, kid: Option<&str>, claims: &Value) -> String {
        let pem = self.private_pem().as_bytes();
        let key = match self.algorithm() {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
            _ => EncodingKey::from_rsa_pem(pem),
        };
        let mut header = Header::new(self.algorithm());
        header.kid = kid.map(str::to_owned);
        key.and_then(|key| jsonwebtoken::encode(&header, claims, &key))
            .unwrap_or_else(|e| panic!("signing a test token with {}: {e}", self.kid()))
    }
}

/// A JWKS document holding the public keys of `keys`.
pub fn jwks(keys: &[TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|key| key.public_jwk()).collect::<Vec<_>>() })
}

/// The seconds since the Unix epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `{"sub": sub, "exp": now + expires_in}` (a negative `expires_in` has expired).
pub fn claims(sub: &str, expires_in: i64) -> Value {
    json!({ "sub": sub, "exp": now() + expires_in })
}

/// An HS256 token signed with `secret`.
pub fn hs256(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_else(|e| panic!("signing a test HS256 token: {e}"))
}
