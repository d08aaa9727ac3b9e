//! Delivery of verification codes: the proof that whoever registers an address can read its
//! mail, and so the guard of every invitation waiting for that address.
//!
//! - `demo` (the embedded default) hands the code back in the register response, for trying
//!   the server out. Anyone can then register any address, so it logs a warning at start and
//!   refuses to serve on a non-loopback address unless `allow_demo_on_network` is set.
//! - `log` writes the code to the server log, for operators who relay logs to people.
//! - `smtp` mails it through a relay ([`smtp`]).
//!
//! [`config`] is how each is written in the config file.

pub mod config;
pub mod smtp;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::email::Email;
pub use config::{MailerConfig, SmtpConfig, TlsMode};
use smtp::SmtpMailer;

/// How verification codes reach people, ready to deliver. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Mailer {
    /// Return the code in the response (`is_demo: true`, `demo_code`).
    Demo,
    /// Write the code to the server log; the response carries no code.
    Log,
    /// Mail the code through an SMTP relay.
    Smtp(Arc<SmtpMailer>),
}

/// What the register response says about the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Whether the code is returned in the response.
    pub is_demo: bool,
    /// The code, in demo mode only.
    pub demo_code: Option<String>,
}

/// A mailer configuration the server will not start with.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    /// The demo mailer on an address other machines can reach.
    #[error(
        "refusing to serve on {listen} with mailer = \"demo\": the demo mailer returns every \
         verification code to whoever registers, so anyone who can reach this address can claim \
         any email (and the lists shared with it). Set [mailer] kind = \"smtp\" (or mailer = \
         \"log\"), listen on a loopback address, or set allow_demo_on_network = true in [mailer] \
         to accept that"
    )]
    DemoOnNetwork {
        /// The listen address.
        listen: SocketAddr,
    },
    /// `password_file` could not be read.
    #[error("mailer: reading password_file {path}")]
    PasswordFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A user name without a password.
    #[error("mailer: `username` is set but no password: set TANDEM_SMTP_PASSWORD or password_file")]
    MissingPassword,
    /// A password without a user name.
    #[error("mailer: a password is set but no `username`")]
    PasswordWithoutUsername,
    /// TLS could not be set up for the relay's name.
    #[error("mailer: setting up TLS for {host}")]
    Tls {
        /// The relay's host name.
        host: String,
        /// What lettre said.
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

/// A code that could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The address cannot be a mail recipient (the caller's problem).
    #[error("'{email}' cannot receive mail: {source}")]
    Recipient {
        /// The address.
        email: Email,
        /// What lettre said.
        #[source]
        source: lettre::address::AddressError,
    },
    /// The mail could not be built.
    #[error("building the verification mail")]
    Build(#[from] lettre::error::Error),
    /// The relay could not be reached or refused the mail (the server's problem).
    #[error("sending through the SMTP relay {relay}")]
    Relay {
        /// `host:port`.
        relay: String,
        /// What lettre said.
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

impl Mailer {
    /// The mailer `config` describes, for a server listening on `listen`. Logs which one runs;
    /// the demo mailer logs a warning, and is refused on a non-loopback address unless allowed.
    pub fn start(config: &MailerConfig, listen: SocketAddr) -> Result<Self, MailerError> {
        match config {
            MailerConfig::Demo { allow_on_network } => {
                if !listen.ip().to_canonical().is_loopback() && !allow_on_network {
                    return Err(MailerError::DemoOnNetwork { listen });
                }
                tracing::warn!(
                    target: "tandem::mailer",
                    "demo mailer: verification codes are shown to the caller in the register \
                     response, not mailed, so anyone can register any email address; for trying \
                     the server out only (set [mailer] kind = \"smtp\" to mail them)"
                );
                Ok(Mailer::Demo)
            }
            MailerConfig::Log => {
                tracing::info!(target: "tandem::mailer", "verification codes go to this log");
                Ok(Mailer::Log)
            }
            MailerConfig::Smtp(smtp) => {
                let mailer = SmtpMailer::new(smtp)?;
                tracing::info!(
                    target: "tandem::mailer",
                    relay = mailer.relay(),
                    tls = ?smtp.tls,
                    "verification codes are mailed"
                );
                Ok(Mailer::Smtp(Arc::new(mailer)))
            }
        }
    }

    /// Checks, before anything is stored, that `email` can receive what this mailer sends.
    pub fn check_recipient(&self, email: &Email) -> Result<(), SendError> {
        match self {
            Mailer::Smtp(_) => SmtpMailer::recipient(email).map(|_| ()),
            Mailer::Demo | Mailer::Log => Ok(()),
        }
    }

    /// Delivers `code` for `email`.
    pub async fn deliver(&self, email: &Email, code: &str) -> Result<Delivery, SendError> {
        match self {
            Mailer::Demo => Ok(Delivery { is_demo: true, demo_code: Some(code.to_owned()) }),
            Mailer::Log => {
                tracing::info!(target: "tandem::mailer", %email, %code, "verification code");
                Ok(Delivery { is_demo: false, demo_code: None })
            }
            Mailer::Smtp(smtp) => {
                smtp.send(email, code).await?;
                Ok(Delivery { is_demo: false, demo_code: None })
            }
        }
    }
}
