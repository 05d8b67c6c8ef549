//! Bearer-token auth over every mounted route (HS256), the access policy's roles and rule,
//! on the notes of `notes/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod notes;

use axum::Router;
use axum::http::StatusCode;
use factum_http::{HttpConfig, JwtAuth};
use factum_testing::http::column;
use factum_testing::jwt::{self, claims};
use serde_json::{Value, json};

// A note: written by its author; editing is the author's or an admin's; purging needs the
// `moderator` role; its events need `auditor` or `moderator`.

use notes::*;

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
        post_as(&app, "/notes/n1/commands/Write", r#"{"text": "hi"}"#, token)
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

    let r = post_as(
        &app,
        "/notes/n1/commands/Write",
        r#"{"text": "mine"}"#,
        &alice,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // The rule: bob is not the author.
    get_as(&app, "/notes/n1", &bob).await.forbidden("bob reads");
    get_as(&app, "/notes/n1/events", &bob)
        .await
        .forbidden("bob's audit");
    let r = post_as(
        &app,
        "/notes/n1/commands/Edit",
        r#"{"text": "bob was here"}"#,
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
    let r = post_as(&app, "/notes/n1/commands/Purge", "{}", &alice).await;
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
    let r = post_as(&app, "/notes/n1/commands/Purge", "{}", &alice_mod).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = post_as(
        &app,
        "/notes/n1/commands/Edit",
        r#"{"text": "by admin"}"#,
        &admin,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = get_as(&app, "/notes/n1/events", &admin).await;
    assert_eq!(
        column(&r.body["events"], "user_id", Value::as_str),
        ["alice", "alice", "root"]
    );

    // A missing note is a 404 for anyone; anyone may write a new one.
    assert_eq!(
        get_as(&app, "/notes/none", &bob).await.status,
        StatusCode::NOT_FOUND
    );
    let r = post_as(&app, "/notes/commands/Write", r#"{"text": "bob's"}"#, &bob).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}
