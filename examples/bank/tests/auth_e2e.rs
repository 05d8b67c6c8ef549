//! The real `bank` binary with authentication on (a JWKS file, an issuer and an audience,
//! partly from environment variables), over real HTTP: who may do what to an account, and
//! the settings it refuses at start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use factum_testing::http::fetch;
use factum_testing::jwt::{self, TestKey};
use factum_testing::server::{Server, run_to_end};
use serde_json::{Value, json};

const BANK: &str = env!("CARGO_BIN_EXE_bank");
const ISSUER: &str = "https://idp.bank.test/";
const AUDIENCE: &str = "bank-api";

fn token(key: TestKey, sub: &str, roles: &[&str]) -> String {
    key.sign(&json!({
        "sub": sub, "exp": jwt::now() + 600, "iss": ISSUER, "aud": AUDIENCE, "roles": roles
    }))
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("authorization", b.as_str()))
        .collect();
    let reply = fetch(client, method, url, body, &headers).await.unwrap();
    (reply.status.as_u16(), reply.body, reply.headers)
}

#[tokio::test]
async fn with_a_jwks_an_account_is_its_openers_and_the_admins() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, jwt::jwks(&[TestKey::Rsa1, TestKey::Ec1]).to_string()).unwrap();
    let bank = Server::start(
        BANK,
        &[
            "--listen",
            "127.0.0.1:0",
            "--store",
            "memory",
            "--jwks-file",
            jwks.to_str().unwrap(),
            "--jwt-issuer",
            ISSUER,
        ],
        &[("FACTUM_JWT_AUDIENCE", AUDIENCE)],
    );
    let client = reqwest::Client::new();
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let alice = token(TestKey::Rsa1, "alice", &[]);
    let bob = token(TestKey::Ec1, "bob", &["teller"]);
    let admin = token(TestKey::Rsa1, "root", &["admin"]);
    let account = bank.url("/accounts/acc-1");
    let open = r#"{"type": "OpenAccount", "owner": "Alice", "initial_balance": 10}"#;
    let deposit = r#"{"type": "Deposit", "amount": 5}"#;

    let (status, _, _) = call(&client, get.clone(), &bank.url("/health"), None, None).await;
    assert_eq!(status, 200);
    let (status, body, headers) =
        call(&client, get.clone(), &bank.url("/openapi.json"), None, None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")));
    assert_eq!(headers["www-authenticate"], "Bearer");
    let (status, _, _) = call(&client, post.clone(), &account, Some(open), None).await;
    assert_eq!(status, 401);
    // Wrong audience, and an HS256 token to a server without a secret.
    let mut wrong = json!({"sub": "alice", "exp": jwt::now() + 600, "iss": ISSUER, "aud": "other"});
    let wrong_audience = TestKey::Rsa1.sign(&wrong);
    wrong["aud"] = json!(AUDIENCE);
    for wrong in [wrong_audience, jwt::hs256("guess", &wrong)] {
        let (status, _, _) = call(&client, post.clone(), &account, Some(open), Some(&wrong)).await;
        assert_eq!(status, 401);
    }

    let (status, body, _) = call(&client, post.clone(), &account, Some(open), Some(&alice)).await;
    assert_eq!(
        (status, &body["opened_by"]),
        (201, &json!("alice")),
        "{body}"
    );
    for (method, url, body) in [
        (get.clone(), account.clone(), None),
        (post.clone(), account.clone(), Some(deposit)),
        (get.clone(), bank.url("/accounts/acc-1/movements"), None),
    ] {
        let (status, reply, _) = call(&client, method.clone(), &url, body, Some(&bob)).await;
        assert_eq!(
            (status, reply["code"].as_str()),
            (403, Some("FORBIDDEN")),
            "bob {method} {url}"
        );
        let (status, reply, _) = call(&client, method.clone(), &url, body, Some(&admin)).await;
        assert_eq!(status / 100, 2, "admin {method} {url}: {reply}");
    }
    let (_, body, _) = call(&client, get.clone(), &account, None, Some(&alice)).await;
    assert_eq!(body["balance"], 15.0, "the admin's deposit only");
    let views = bank.url("/views/accounts");
    for (who, total) in [(&bob, 0), (&alice, 1)] {
        let (_, page, _) = call(&client, get.clone(), &views, None, Some(who)).await;
        assert_eq!(page["total"], total);
    }
}

#[test]
fn settings_that_would_leave_the_bank_open_or_blind_are_refused_at_start() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    for (setting, value, named) in [
        ("--jwt-issuer", ISSUER, "--jwt-issuer"),
        ("--jwks-url", url.as_str(), "--jwks-url"),
        ("--jwks-file", "/nonexistent/jwks.json", "JWKS"),
    ] {
        let memory = ["--listen", "127.0.0.1:0", "--store", "memory"];
        let (code, stderr) = run_to_end(BANK, &[&memory[..], &[setting, value]].concat(), &[]);
        assert_eq!(code, Some(1), "{setting}: {stderr}");
        assert!(stderr.contains(named), "{setting}: {stderr}");
    }
}
