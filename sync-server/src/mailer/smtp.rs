//! Mailing codes through an SMTP relay: lettre's tokio transport, TLS by rustls with the
//! webpki roots, connections pooled and reused between mails.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

use super::config::{SmtpConfig, TlsMode};
use super::{MailerError, SendError};
use crate::auth::code::CODE_TTL;
use crate::auth::email::Email;

/// The subject of every verification mail.
const SUBJECT: &str = "Your Tandem verification code";

/// A relay ready to send.
#[derive(Debug)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port`, for logs and errors.
    relay: String,
}

impl SmtpMailer {
    /// A transport for `config`, with its password resolved (`TANDEM_SMTP_PASSWORD`, already
    /// merged into `config.password` by the config loader, or `password_file`). Connects only
    /// when the first mail is sent.
    pub fn new(config: &SmtpConfig) -> Result<Self, MailerError> {
        let password = match (&config.password, &config.password_file) {
            (Some(password), _) => Some(password.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|source| {
                    MailerError::PasswordFile { path: path.display().to_string(), source }
                })?;
                Some(text.trim_end_matches(['\r', '\n']).to_owned())
            }
            (None, None) => None,
        };
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned())
                .map_err(|source| MailerError::Tls { host: host.to_owned(), source })
        };
        let tls = match config.tls {
            TlsMode::None => Tls::None,
            TlsMode::Starttls => Tls::Required(tls(&config.host)?),
            TlsMode::Tls => Tls::Wrapper(tls(&config.host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(config.timeout_secs)));
        match (&config.username, password) {
            (Some(username), Some(password)) => {
                builder = builder.credentials(Credentials::new(username.clone(), password));
            }
            (None, None) => {}
            (Some(_), None) => return Err(MailerError::MissingPassword),
            (None, Some(_)) => return Err(MailerError::PasswordWithoutUsername),
        }
        Ok(Self {
            transport: builder.build(),
            from: config.from.clone(),
            relay: format!("{}:{}", config.host, config.port),
        })
    }

    /// `host:port` of the relay.
    pub fn relay(&self) -> &str {
        &self.relay
    }

    /// The recipient an email becomes, or why it cannot be one.
    pub fn recipient(email: &Email) -> Result<Address, SendError> {
        email
            .as_str()
            .parse()
            .map_err(|source| SendError::Recipient { email: email.clone(), source })
    }

    /// Mails `code` to `email`; returns once the relay accepted the mail.
    pub async fn send(&self, email: &Email, code: &str) -> Result<(), SendError> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, Self::recipient(email)?))
            .subject(SUBJECT)
            .header(ContentType::TEXT_PLAIN)
            .body(body(code))?;
        self.transport
            .send(message)
            .await
            .map_err(|source| SendError::Relay { relay: self.relay.clone(), source })?;
        Ok(())
    }
}

/// The text of the mail.
fn body(code: &str) -> String {
    format!(
        "Your Tandem verification code is {code}\n\n\
         Enter it in the app within {} minutes. If you did not just sign up, ignore this mail:\n\
         nobody can use your address without the code.\n",
        CODE_TTL.as_secs() / 60
    )
}
