//! Verification codes mailed through the `smtp` mailer (lettre) to an SMTP sink the test
//! starts on a random port: the code is read out of the received mail, as a person would.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;
use tandem_server::mailer::{MailerConfig, SmtpConfig, TlsMode};

use crate::smtp_sink::SmtpSink;
use crate::support::{PASSWORD, TestServer, TestUser};

const FROM: &str = "Tandem <no-reply@tandem.test>";

fn smtp(port: u16, username: Option<&str>, password_file: Option<&Path>) -> MailerConfig {
    MailerConfig::Smtp(SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::None,
        username: username.map(str::to_owned),
        password: None,
        password_file: password_file.map(Path::to_path_buf),
        from: FROM.parse().unwrap(),
        timeout_secs: 5,
    })
}

/// A password made for one test run: nothing secret is written in the repository.
fn fresh_password() -> String {
    use rand::Rng as _;
    rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// Registers, reads the code from the mail, verifies and logs in.
async fn signup_by_mail(
    server: &TestServer,
    sink: &SmtpSink,
    email: &str,
    stored: &str,
) -> TestUser {
    let (status, body) =
        server.post("register", None, json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["is_demo"], false);
    assert!(body["data"].get("demo_code").is_none(), "the code is never shown: {body}");
    let code = sink.mail_to(stored).await.code();
    let (status, body) = server.post("verify", None, json!({"email": email, "code": code})).await;
    assert_eq!(status, 200, "{body}");
    server.login(email, PASSWORD).await
}

#[tokio::test]
async fn the_code_arrives_by_mail_and_signs_the_user_in() {
    let password = fresh_password();
    let sink = SmtpSink::with_credentials("tandem", &password).await;
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("smtp-password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let server = TestServer::start_with(|config| {
        config.mailer = smtp(sink.port, Some("tandem"), Some(&password_file));
    })
    .await;

    let alice = signup_by_mail(&server, &sink, " Alice@Example.COM", "alice@example.com").await;
    assert_eq!(alice.email, "alice@example.com");
    let mail = sink.mail_to("alice@example.com").await;
    assert_eq!(mail.from, "no-reply@tandem.test");
    assert_eq!(
        mail.auth,
        Some(("tandem".to_owned(), password.clone())),
        "AUTH with the file's password"
    );
    assert!(mail.data.contains("Subject: Your Tandem verification code"), "{}", mail.data);
    assert!(mail.data.contains("From: Tandem <no-reply@tandem.test>"), "{}", mail.data);

    // An address with a non-ASCII local part goes out in its normal form, over SMTPUTF8.
    let jose = signup_by_mail(
        &server,
        &sink,
        "Jose\u{301}@B\u{fc}cher.example",
        "jos\u{e9}@xn--bcher-kva.example",
    )
    .await;
    assert_eq!(jose.email, "jos\u{e9}@xn--bcher-kva.example");

    // A stranger registering an invited address gets no code: only its mailbox does.
    let list = server.create_list(&alice, "Invite").await;
    server.share(&alice, list, "bob@example.com", "EDITOR").await;
    let (status, body) = server
        .post(
            "register",
            None,
            json!({"email": "bob@example.com", "password": "mallory's password"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"].get("demo_code").is_none(), "{body}");
    let real_code = sink.mail_to("bob@example.com").await.code();
    let wrong = if real_code == "000000" { "000001" } else { "000000" };
    let (status, _) =
        server.post("verify", None, json!({"email": "bob@example.com", "code": wrong})).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn a_relay_that_refuses_or_is_down_is_a_503_and_registering_again_works() {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|config| config.mailer = smtp(sink.port, None, None)).await;
    let carol = "carol@example.com";

    sink.refuse_mail(true);
    let (status, body) =
        server.post("register", None, json!({"email": carol, "password": PASSWORD})).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["message"].as_str().unwrap().contains("could not be sent"), "{body}");
    assert!(sink.mails().is_empty());
    // Nothing locks her out: the account is not verified, and registering again sends a code.
    let (status, _) =
        server.post("login", None, json!({"email": carol, "password": PASSWORD})).await;
    assert_eq!(status, 403);
    sink.refuse_mail(false);
    let user = signup_by_mail(&server, &sink, carol, carol).await;
    assert_eq!(user.email, carol);

    // No relay at all answers on the port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = TestServer::start_with(|config| config.mailer = smtp(closed, None, None)).await;
    let (status, body) =
        down.post("register", None, json!({"email": carol, "password": PASSWORD})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], 503);
}

#[tokio::test]
async fn the_binary_takes_its_smtp_settings_from_the_file_and_the_password_from_the_environment() {
    let password = fresh_password();
    let sink = SmtpSink::with_credentials("relay-user", &password).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tandem.toml");
    std::fs::write(
        &config,
        format!(
            "[mailer]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             username = \"relay-user\"\nfrom = \"{FROM}\"\n",
            sink.port
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .env("TANDEM_SMTP_PASSWORD", &password)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let base = loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "the server exited");
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            break url.to_owned();
        }
    };
    let server = TestServer::at(base);
    let dave = signup_by_mail(&server, &sink, "dave@example.com", "dave@example.com").await;
    assert_eq!(dave.email, "dave@example.com");
    assert_eq!(sink.mail_to("dave@example.com").await.auth, Some(("relay-user".into(), password)));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn starttls_is_required_never_skipped_when_the_relay_does_not_offer_it() {
    // The sink offers no STARTTLS: a mailer told to use it must not fall back to plain text.
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|config| {
        let MailerConfig::Smtp(mut smtp) = smtp(sink.port, None, None) else { unreachable!() };
        smtp.tls = TlsMode::Starttls;
        config.mailer = MailerConfig::Smtp(smtp);
    })
    .await;
    let (status, body) = server
        .post("register", None, json!({"email": "erin@example.com", "password": PASSWORD}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(sink.mails().is_empty(), "nothing went out in plain text");
}
