//! Authentication as a layer (every mounted route protected, whoever mounted it), JWKS
//! verification (RS256 and ES256, from a file and from a URL, with issuer and audience,
//! key rotation and a floor on refetching), and authorization (roles per command and read,
//! and a rule over the state), driven with `tower::ServiceExt::oneshot`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::routing::get;
use factum_core::{
    Access, AccessPolicy, Aggregate, CommandHandler, Commands, CqrsCommandEngine, CqrsContext,
    CqrsError, Event, InMemoryEventStore,
};
use factum_http::{Api, HttpAggregate, HttpConfig, JwtAuth};
use factum_testing::jwt::{self, TestKey, claims};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower::ServiceExt;
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::{OpenApiBuilder, PathsBuilder, ResponseBuilder};

// A note: written by its author; editing is the author's or an admin's; purging needs the
// `moderator` role; its events need `auditor` or `moderator`.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type")]
enum NoteEvent {
    Written {
        text: String,
        author: Option<String>,
    },
    Edited {
        text: String,
    },
}

impl Event for NoteEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Written { .. } => "Written",
            Self::Edited { .. } => "Edited",
        }
    }
}

#[derive(Commands, Debug, Deserialize, ToSchema)]
#[serde(tag = "type")]
enum CreateNote {
    Write { text: String },
}

#[derive(Commands, Debug, Deserialize, ToSchema)]
#[serde(tag = "type")]
enum ChangeNote {
    Edit { text: String },
    Purge,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    id: String,
    text: String,
    author: Option<String>,
}

impl Aggregate for Note {
    const TYPE: &'static str = "note";
    type Event = NoteEvent;
    type Error = CqrsError;
    fn with_aggregate_id(id: String) -> Self {
        Self {
            id,
            text: String::new(),
            author: None,
        }
    }
    fn aggregate_id(&self) -> &str {
        &self.id
    }
    fn apply(&mut self, event: &NoteEvent) {
        match event {
            NoteEvent::Written { text, author } => {
                self.text.clone_from(text);
                self.author.clone_from(author);
            }
            NoteEvent::Edited { text } => self.text.clone_from(text),
        }
    }
}

impl CommandHandler for Note {
    type CreateCommand = CreateNote;
    type UpdateCommand = ChangeNote;
    type Services = ();
    async fn handle_create(
        &self,
        command: &CreateNote,
        _: &(),
        ctx: &CqrsContext,
    ) -> Result<Vec<NoteEvent>, CqrsError> {
        let CreateNote::Write { text } = command;
        Ok(vec![NoteEvent::Written {
            text: text.clone(),
            author: ctx.user_id().map(str::to_owned),
        }])
    }
    async fn handle_update(
        &self,
        command: &ChangeNote,
        _: &(),
        _: &CqrsContext,
    ) -> Result<Vec<NoteEvent>, CqrsError> {
        Ok(vec![NoteEvent::Edited {
            text: match command {
                ChangeNote::Edit { text } => text.clone(),
                ChangeNote::Purge => String::new(),
            },
        }])
    }
}

#[derive(Serialize, ToSchema)]
struct NoteView {
    text: String,
    author: Option<String>,
}

impl HttpAggregate for Note {
    const PATH: &'static str = "notes";
    type View = NoteView;
    fn view(&self) -> NoteView {
        NoteView {
            text: self.text.clone(),
            author: self.author.clone(),
        }
    }
    fn access_policy() -> AccessPolicy<Self> {
        AccessPolicy::new()
            .command("Purge", ["moderator"])
            .read_history(["auditor", "moderator"])
            .rule(|ctx: &CqrsContext, _: Access<'_>, note: Option<&Note>| {
                note.is_none_or(|note| {
                    ctx.has_role("admin") || note.author.as_deref() == ctx.user_id()
                })
            })
    }
}

const SECRET: &str = "k3y";

/// A route a service adds itself, whose handler extracts nothing at all.
fn plain_routes() -> (Router, utoipa::openapi::OpenApi) {
    let router = Router::new().route("/plain", get(|| async { "plain" }));
    let doc = OpenApiBuilder::new()
        .paths(
            PathsBuilder::new().path(
                "/plain",
                PathItem::new(
                    HttpMethod::Get,
                    OperationBuilder::new()
                        .response("200", ResponseBuilder::new().description("plain").build())
                        .build(),
                ),
            ),
        )
        .build();
    (router, doc)
}

fn app(config: HttpConfig) -> Router {
    let store = Arc::new(InMemoryEventStore::new());
    let engine = CqrsCommandEngine::<Note>::new(store.clone(), ());
    let (plain, doc) = plain_routes();
    Api::new(config)
        .with_health(store)
        .with_aggregate("", engine)
        .with_routes(plain, doc)
        .into_router()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

async fn send(app: &Router, method: Method, uri: &str, body: Option<&str>, token: &str) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    if !token.is_empty() {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

async fn get_as(app: &Router, uri: &str, token: &str) -> Reply {
    send(app, Method::GET, uri, None, token).await
}

impl Reply {
    fn unauthorized(&self, what: &str) {
        assert_eq!(
            self.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            self.text
        );
        assert_eq!(self.body["code"], "UNAUTHORIZED", "{what}");
        assert_eq!(self.headers["www-authenticate"], "Bearer", "{what}");
        assert_eq!(
            self.body["requestId"],
            self.headers["x-request-id"].to_str().unwrap()
        );
    }

    fn forbidden(&self, what: &str) {
        assert_eq!(self.status, StatusCode::FORBIDDEN, "{what}: {}", self.text);
        assert_eq!(self.body["code"], "FORBIDDEN", "{what}");
    }
}

#[tokio::test]
async fn every_mounted_route_needs_a_token_even_one_added_later_by_the_service() {
    let app = app(HttpConfig::default().with_auth(JwtAuth::hs256(SECRET).unwrap()));
    let good = jwt::hs256(SECRET, &claims("alice", 600));
    let expired = jwt::hs256(SECRET, &claims("alice", -600));
    for token in ["", "not.a.jwt", expired.as_str()] {
        for uri in [
            "/plain",
            "/notes/n1",
            "/notes/n1/events",
            "/openapi.json",
            "/docs/",
        ] {
            get_as(&app, uri, token).await.unauthorized(uri);
        }
        send(
            &app,
            Method::POST,
            "/notes/n1/commands/Write",
            Some(r#"{"text": "hi"}"#),
            token,
        )
        .await
        .unauthorized("a command");
    }
    // The handler of /plain knows nothing of auth, yet a valid token is what lets it run.
    let r = get_as(&app, "/plain", &good).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "plain"));
    assert_eq!(get_as(&app, "/health", "").await.status, StatusCode::OK);
    assert_eq!(
        get_as(&app, "/openapi.json", &good).await.status,
        StatusCode::OK
    );
    // An unknown route stays a 404, token or not.
    assert_eq!(
        get_as(&app, "/nowhere", "").await.status,
        StatusCode::NOT_FOUND
    );

    // The document says so for the route the service added, not only the generic ones.
    let doc = get_as(&app, "/openapi.json", &good).await.body;
    let plain = &doc["paths"]["/plain"]["get"];
    assert_eq!(plain["security"], json!([{"bearer": []}]));
    assert!(plain["responses"]["401"].is_object() && plain["responses"]["403"].is_object());
    assert!(doc["paths"]["/health"]["get"]["security"].is_null());
    assert!(doc["paths"]["/notes/{id}/commands/Edit"]["post"]["responses"]["403"].is_object());

    // Docs can be made public; nothing else moves.
    let public = app_public_docs();
    assert_eq!(
        get_as(&public, "/openapi.json", "").await.status,
        StatusCode::OK
    );
    get_as(&public, "/plain", "")
        .await
        .unauthorized("/plain with public docs");
}

fn app_public_docs() -> Router {
    app(HttpConfig::default()
        .with_auth(JwtAuth::hs256(SECRET).unwrap())
        .with_public_docs(true))
}

#[tokio::test]
async fn without_auth_every_route_is_open_and_the_document_has_no_security() {
    let app = app(HttpConfig::default());
    assert_eq!(get_as(&app, "/plain", "").await.status, StatusCode::OK);
    let doc = get_as(&app, "/openapi.json", "").await.body;
    assert!(doc["paths"]["/plain"]["get"]["security"].is_null());
    assert!(doc["components"]["securitySchemes"].is_null());
}

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
        let r = send(
            &app,
            Method::POST,
            &format!("/notes/of-{user}/commands/Write"),
            Some(r#"{"text": "hi"}"#),
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
        let r = send(
            &app,
            Method::POST,
            "/notes/n-refused/commands/Write",
            Some(r#"{"text": "x"}"#),
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

#[tokio::test]
async fn roles_and_the_rule_decide_and_a_refused_command_stores_nothing() {
    let auth = JwtAuth::builder()
        .hs256(SECRET)
        .roles_claim("scope")
        .build()
        .unwrap();
    let app = app(HttpConfig::default().with_auth(auth));
    let token = |sub: &str, scope: &str| {
        let mut claims = claims(sub, 600);
        claims["scope"] = json!(scope);
        jwt::hs256(SECRET, &claims)
    };
    let alice = token("alice", "");
    let alice_mod = token("alice", "moderator");
    let bob = token("bob", "auditor");
    let admin = token("root", "admin auditor");

    let r = send(
        &app,
        Method::POST,
        "/notes/n1/commands/Write",
        Some(r#"{"text": "mine"}"#),
        &alice,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // The rule: bob is not the author.
    get_as(&app, "/notes/n1", &bob).await.forbidden("bob reads");
    get_as(&app, "/notes/n1/events", &bob)
        .await
        .forbidden("bob's audit");
    let r = send(
        &app,
        Method::POST,
        "/notes/n1/commands/Edit",
        Some(r#"{"text": "bob was here"}"#),
        &bob,
    )
    .await;
    r.forbidden("bob edits");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("bob may not run Edit on note 'n1'")
    );

    // The roles: alice is the author but purging needs `moderator`, her events `auditor`.
    let r = send(
        &app,
        Method::POST,
        "/notes/n1/commands/Purge",
        Some("{}"),
        &alice,
    )
    .await;
    r.forbidden("alice purges");
    assert_eq!(r.body["details"]["required_roles"], json!(["moderator"]));
    get_as(&app, "/notes/n1/events", &alice)
        .await
        .forbidden("alice's audit");

    // Nothing the refusals touched was stored.
    let r = get_as(&app, "/notes/n1/events", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["events"].as_array().unwrap().len(), 1);

    // Allowed: the author reads, the moderator author purges, the admin edits.
    let r = get_as(&app, "/notes/n1", &alice).await;
    assert_eq!(r.body["state"]["text"], "mine");
    let r = send(
        &app,
        Method::POST,
        "/notes/n1/commands/Purge",
        Some("{}"),
        &alice_mod,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = send(
        &app,
        Method::POST,
        "/notes/n1/commands/Edit",
        Some(r#"{"text": "by admin"}"#),
        &admin,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = get_as(&app, "/notes/n1/events", &admin).await;
    let users: Vec<_> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["user_id"].clone())
        .collect();
    assert_eq!(users, [json!("alice"), json!("alice"), json!("root")]);

    // A missing note is a 404 for anyone; anyone may write a new one.
    assert_eq!(
        get_as(&app, "/notes/none", &bob).await.status,
        StatusCode::NOT_FOUND
    );
    let r = send(
        &app,
        Method::POST,
        "/notes/commands/Write",
        Some(r#"{"text": "bob's"}"#),
        &bob,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}
