//! Tokens signed with public keys: a JWKS file (RS256, ES256, issuer and audience), a JWKS
//! URL (cached, refreshed, not hammered, 503 when unreachable), on the notes of `notes/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod notes;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use factum_http::{HttpConfig, JwtAuth};
use factum_testing::jwt::{self, TestKey, claims};
use serde_json::{Value, json};

// A note: written by its author; editing is the author's or an admin's; purging needs the
// `moderator` role; its events need `auditor` or `moderator`.

use notes::*;

fn write_jwks(keys: &[TestKey]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), jwt::jwks(keys).to_string()).unwrap();
    file
}

const ISSUER: &str = "https://issuer.test/";
const AUDIENCE: &str = "factum-tests";

fn full_claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": jwt::now() + 600, "iss": ISSUER, "aud": AUDIENCE})
}

/// A token without a signature check: `alg: none`.
fn unsigned(claims: &Value) -> String {
    let b64 = |v: &Value| {
        let text = v.to_string();
        // base64url without padding, by hand: no extra dependency for one test.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = text.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

#[tokio::test]
async fn a_jwks_file_verifies_rs256_and_es256_with_issuer_and_audience() {
    let file = write_jwks(&[TestKey::Rsa1, TestKey::Ec1]);
    let auth = JwtAuth::builder()
        .jwks_file(file.path())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    assert_eq!(auth.jwks_keys(), 2);
    let app = app(HttpConfig::default().with_auth(auth));

    let rs = TestKey::Rsa1.sign(&full_claims("alice"));
    let es = TestKey::Ec1.sign(&full_claims("bob"));
    for (token, user) in [(&rs, "alice"), (&es, "bob")] {
        let r = post_as(
            &app,
            &format!("/notes/of-{user}/commands/Write"),
            r#"{"text": "hi"}"#,
            token,
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.body["state"]["author"], user);
    }
    // Without kid, the one key of the token's algorithm is used.
    let no_kid = TestKey::Rsa1.sign_with_kid(None, &full_claims("alice"));
    assert_eq!(get_as(&app, "/plain", &no_kid).await.status, StatusCode::OK);
    // An audience list naming ours is fine.
    let mut many = full_claims("alice");
    many["aud"] = json!(["other", AUDIENCE]);
    assert_eq!(
        get_as(&app, "/plain", &TestKey::Rsa1.sign(&many))
            .await
            .status,
        StatusCode::OK
    );

    let with = |key: &str, value: Value| {
        let mut claims = full_claims("alice");
        claims[key] = value;
        claims
    };
    let without = |key: &str| {
        let mut claims = full_claims("alice");
        claims.as_object_mut().unwrap().remove(key);
        claims
    };
    let refused = [
        (
            "wrong issuer",
            TestKey::Rsa1.sign(&with("iss", json!("https://evil.test/"))),
        ),
        ("no issuer", TestKey::Rsa1.sign(&without("iss"))),
        (
            "wrong audience",
            TestKey::Ec1.sign(&with("aud", json!("someone-else"))),
        ),
        ("no audience", TestKey::Ec1.sign(&without("aud"))),
        (
            "expired",
            TestKey::Rsa1.sign(&with("exp", json!(jwt::now() - 600))),
        ),
        ("no sub", TestKey::Rsa1.sign(&without("sub"))),
        (
            "not valid yet",
            TestKey::Ec1.sign(&with("nbf", json!(jwt::now() + 600))),
        ),
        // Signed by a key not in the set, under its own kid and under a known one.
        ("unknown key", TestKey::Rsa2.sign(&full_claims("alice"))),
        (
            "kid of another key",
            TestKey::Rsa2.sign_with_kid(Some("rsa-1"), &full_claims("alice")),
        ),
        // The EC key's kid on an RS256 token: no RS256 key has it.
        (
            "kid of another algorithm",
            TestKey::Rsa1.sign_with_kid(Some("ec-1"), &full_claims("alice")),
        ),
        // Algorithm confusion: HS256 with the public key as the secret, on a JWKS-only server.
        (
            "HS256 to a JWKS-only server",
            jwt::hs256(
                &TestKey::Rsa1.public_jwk().to_string(),
                &full_claims("alice"),
            ),
        ),
        ("alg none", unsigned(&full_claims("alice"))),
    ];
    for (what, token) in &refused {
        get_as(&app, "/plain", token).await.unauthorized(what);
        let r = post_as(
            &app,
            "/notes/n-refused/commands/Write",
            r#"{"text": "x"}"#,
            token,
        )
        .await;
        r.unauthorized(what);
    }
    // Nothing was stored by the refused commands.
    let r = get_as(&app, "/notes/n-refused", &rs).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

#[tokio::test]
async fn a_secret_only_server_refuses_public_key_tokens() {
    let app = app(HttpConfig::default().with_auth(JwtAuth::hs256(SECRET).unwrap()));
    get_as(&app, "/plain", &TestKey::Rsa1.sign(&claims("alice", 600)))
        .await
        .unauthorized("RS256 to an HS256-only server");
}

/// A JWKS host on a free port: serves whatever document it holds, counting requests.
struct KeyHost {
    url: String,
    document: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
}

impl KeyHost {
    async fn start(keys: &[TestKey]) -> Self {
        let document = Arc::new(Mutex::new(jwt::jwks(keys)));
        let hits = Arc::new(AtomicUsize::new(0));
        let (doc, count) = (document.clone(), hits.clone());
        let router = Router::new().route(
            "/jwks.json",
            get(move || {
                count.fetch_add(1, Ordering::SeqCst);
                let body = doc.lock().unwrap().clone();
                async move { axum::Json(body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            url,
            document,
            hits,
        }
    }

    fn serve(&self, keys: &[TestKey]) {
        *self.document.lock().unwrap() = jwt::jwks(keys);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_jwks_url_is_cached_picks_up_a_new_key_and_is_not_hammered() {
    let host = KeyHost::start(&[TestKey::Rsa1]).await;
    let floor = Duration::from_millis(1500);
    let auth = JwtAuth::builder()
        .jwks_url(&host.url)
        .jwks_min_refetch(floor)
        .jwks_refresh(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert_eq!(auth.load_keys().await.unwrap(), 1);
    assert_eq!(host.hits(), 1);
    let app = app(HttpConfig::default().with_auth(auth));

    let old = TestKey::Rsa1.sign(&claims("alice", 600));
    for _ in 0..5 {
        assert_eq!(get_as(&app, "/plain", &old).await.status, StatusCode::OK);
    }
    assert_eq!(host.hits(), 1, "known keys are served from the cache");

    // Rotation: the host adds rsa-2; a token under the new kid makes the server re-read.
    host.serve(&[TestKey::Rsa1, TestKey::Rsa2]);
    tokio::time::sleep(floor + Duration::from_millis(100)).await;
    let new = TestKey::Rsa2.sign(&claims("alice", 600));
    let r = get_as(&app, "/plain", &new).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(host.hits(), 2);

    // A flood of made-up key ids within the floor: all refused, the host left alone.
    let before = host.hits();
    let mut flood = Vec::new();
    for i in 0..50 {
        let token = TestKey::Rsa1.sign_with_kid(Some(&format!("made-up-{i}")), &claims("x", 600));
        let app = app.clone();
        flood.push(tokio::spawn(async move {
            get_as(&app, "/plain", &token).await.status
        }));
    }
    for request in flood {
        assert_eq!(request.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    assert!(
        host.hits() <= before + 1,
        "50 unknown kids made {} fetches",
        host.hits() - before
    );
    // After the floor, an unknown kid may look again, once.
    tokio::time::sleep(floor + Duration::from_millis(100)).await;
    let before = host.hits();
    let unknown = TestKey::Rsa1.sign_with_kid(Some("made-up-again"), &claims("x", 600));
    get_as(&app, "/plain", &unknown)
        .await
        .unauthorized("unknown kid");
    assert_eq!(host.hits(), before + 1);
}

#[tokio::test]
async fn a_jwks_url_is_refreshed_periodically_so_a_removed_key_stops_working() {
    let host = KeyHost::start(&[TestKey::Rsa1, TestKey::Ec1]).await;
    let auth = JwtAuth::builder()
        .jwks_url(&host.url)
        .jwks_refresh(Duration::from_millis(300))
        .jwks_min_refetch(Duration::from_millis(300))
        .build()
        .unwrap();
    let app = app(HttpConfig::default().with_auth(auth));
    // Fetched on first use.
    let revoked = TestKey::Rsa1.sign(&claims("alice", 600));
    assert_eq!(
        get_as(&app, "/plain", &revoked).await.status,
        StatusCode::OK
    );
    assert_eq!(host.hits(), 1);
    host.serve(&[TestKey::Ec1]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(350)).await;
        let status = get_as(&app, "/plain", &revoked).await.status;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the removed key still works"
        );
    }
    let kept = TestKey::Ec1.sign(&claims("bob", 600));
    assert_eq!(get_as(&app, "/plain", &kept).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unreachable_jwks_url_fails_at_load_and_answers_503_not_401() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let auth = JwtAuth::builder()
        .jwks_url(&url)
        .jwks_fetch_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    assert!(matches!(
        auth.load_keys().await,
        Err(factum_http::Error::Jwks(_))
    ));
    let app = app(HttpConfig::default().with_auth(auth));
    let r = get_as(&app, "/plain", &TestKey::Rsa1.sign(&claims("alice", 600))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(r.headers.contains_key("retry-after"));
    // A token that no key could ever verify is still a plain 401.
    get_as(&app, "/plain", &jwt::hs256("x", &claims("alice", 600)))
        .await
        .unauthorized("HS256 to a JWKS-only server");
}
