//! Registration, verification, login and tokens, as a user meets them.

use serde_json::json;
use tandem_server::mailer::MailerConfig;

use crate::support::{PASSWORD, TestServer, email};

#[tokio::test]
async fn register_verify_login_gives_a_token_that_works() {
    let server = TestServer::start().await;
    let alice = email("Alice");
    let (status, body) =
        server.post("register", None, json!({"email": alice, "password": PASSWORD})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Verification code sent.");
    assert_eq!(body["data"]["is_demo"], true);
    let code = body["data"]["demo_code"].as_str().unwrap().to_owned();
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");

    let (status, body) = server.post("verify", None, json!({"email": alice, "code": code})).await;
    assert_eq!(
        (status, body["message"].as_str().unwrap()),
        (200, "Account verified. Please login.")
    );

    // The email is case-insensitive and trimmed.
    let login_email = format!("  {}  ", alice.to_uppercase());
    let (status, body) =
        server.post("login", None, json!({"email": login_email, "password": PASSWORD})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Login successful");
    assert_eq!(body["data"]["user"]["email"], alice.to_lowercase());
    let id = body["data"]["user"]["id"].as_u64().unwrap();
    assert!(id > 0 && id < 1 << 53);
    let token = body["data"]["token"].as_str().unwrap();
    let (status, _) = server.get("/api/todolist/read", Some(token)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unverified_accounts_cannot_log_in_and_wrong_passwords_get_one_answer() {
    let server = TestServer::start().await;
    let bob = email("bob");
    server.register(&bob, PASSWORD).await;
    let (status, body) =
        server.post("login", None, json!({"email": bob, "password": PASSWORD})).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("not verified"));

    let (wrong_password, body_a) =
        server.post("login", None, json!({"email": bob, "password": "wrong password"})).await;
    let (no_account, body_b) =
        server.post("login", None, json!({"email": email("nobody"), "password": PASSWORD})).await;
    assert_eq!((wrong_password, no_account), (401, 401));
    assert_eq!(body_a, body_b, "no hint whether the email exists");
}

#[tokio::test]
async fn codes_are_single_use_limited_to_five_tries_and_replaced_by_registering_again() {
    let server = TestServer::start().await;
    let carol = email("carol");
    let first = server.register(&carol, PASSWORD).await;
    let second = server.register(&carol, "another password").await;
    let wrong = |code: &str| if code == "000000" { "000001" } else { "000000" }.to_owned();

    // The first code was replaced (trying it counts as a wrong try).
    let mut wrong_tries = 0;
    if first != second {
        let (status, _) = server.post("verify", None, json!({"email": carol, "code": first})).await;
        assert_eq!(status, 422);
        wrong_tries += 1;
    }
    // Five wrong tries void the code, even the right one afterwards.
    for _ in wrong_tries..4 {
        let (status, body) =
            server.post("verify", None, json!({"email": carol, "code": wrong(&second)})).await;
        assert_eq!(status, 422, "{body}");
    }
    let (status, body) =
        server.post("verify", None, json!({"email": carol, "code": wrong(&second)})).await;
    assert_eq!(status, 422);
    assert!(body["message"].as_str().unwrap().contains("void"), "{body}");
    let (status, _) = server.post("verify", None, json!({"email": carol, "code": second})).await;
    assert_eq!(status, 422, "a voided code stays void");

    // Registering again gives a fresh code; the latest password is the one that counts.
    let third = server.register(&carol, "the final password").await;
    let (status, _) = server.post("verify", None, json!({"email": carol, "code": third})).await;
    assert_eq!(status, 200);
    let (status, _) = server.post("verify", None, json!({"email": carol, "code": third})).await;
    assert_eq!(status, 409, "already verified: the code was single use");
    server.login(&carol, "the final password").await;
    let (status, _) =
        server.post("login", None, json!({"email": carol, "password": PASSWORD})).await;
    assert_eq!(status, 401);

    // A verified email cannot be registered again.
    let (status, body) =
        server.post("register", None, json!({"email": carol, "password": PASSWORD})).await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn bad_emails_and_passwords_are_refused() {
    let server = TestServer::start().await;
    for (email, password) in [
        ("not-an-email", PASSWORD),
        ("a@b", PASSWORD),
        ("ok@example.com", "short"),
        ("ok@example.com", &*"x".repeat(129)),
    ] {
        let (status, body) =
            server.post("register", None, json!({"email": email, "password": password})).await;
        assert_eq!(status, 422, "{email} / {} chars: {body}", password.len());
    }
    // Eight characters exactly, spaces included, are a valid password used as given.
    let dave = email("dave");
    let code = server.register(&dave, " 1234567").await;
    server.post("verify", None, json!({"email": dave, "code": code})).await;
    server.login(&dave, " 1234567").await;
    let (status, _) =
        server.post("login", None, json!({"email": dave, "password": "1234567"})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_log_mailer_returns_no_code() {
    let server = TestServer::start_with(|c| c.mailer = MailerConfig::Log).await;
    let (status, body) =
        server.post("register", None, json!({"email": email("erin"), "password": PASSWORD})).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!({"is_demo": false}));
}

#[tokio::test]
async fn account_calls_are_throttled_per_account_and_per_address() {
    let server = TestServer::start_with(|c| {
        c.throttle.per_account_per_minute = 3;
        c.throttle.per_address_per_minute = 6;
    })
    .await;
    let frank = email("frank");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, _) =
            server.post("login", None, json!({"email": frank, "password": "wrong password"})).await;
        statuses.push(status);
    }
    assert_eq!(statuses, [401, 401, 401, 429], "per account");

    let resp = reqwest::Client::new()
        .post(format!("{}/api/todolist/login", server.base))
        .json(&json!({"email": frank, "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");

    // Other accounts from the same address: the address budget (6) runs out too.
    let (status, _) = server
        .post("login", None, json!({"email": email("g"), "password": "wrong password"}))
        .await;
    assert_eq!(status, 401);
    let (status, body) = server
        .post("login", None, json!({"email": email("h"), "password": "wrong password"}))
        .await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    let server = TestServer::start().await;
    let user = server.signup(&email("ivan")).await;
    let mut parts: Vec<String> = user.token.split('.').map(String::from).collect();
    parts[2] = parts[2].chars().rev().collect();
    for token in [
        parts.join("."),
        "garbage".to_owned(),
        format!("{}.", &user.token[..user.token.rfind('.').unwrap()]),
    ] {
        let (status, body) = server.get("/api/todolist/read", Some(&token)).await;
        assert_eq!(status, 401, "{token}: {body}");
    }
    // A token signed by another server (another secret) is refused too.
    let other = TestServer::start().await;
    let stranger = other.signup(&email("judy")).await;
    let (status, _) = server.get("/api/todolist/read", Some(&stranger.token)).await;
    assert_eq!(status, 401);
}
