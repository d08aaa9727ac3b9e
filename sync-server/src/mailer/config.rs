//! The `mailer` setting: a plain string (`"demo"`, `"log"`, as before) or a `[mailer]` table
//! with a `kind` and, for `kind = "smtp"`, the relay to send through.
//!
//! ```toml
//! [mailer]
//! kind = "smtp"
//! host = "smtp.example.com"
//! tls = "starttls"          # "none", "starttls" (default) or "tls"
//! port = 587                # default: 25, 587 or 465 by `tls`
//! username = "tandem"
//! password_file = "/run/secrets/smtp"   # or TANDEM_SMTP_PASSWORD in the environment
//! from = "Tandem <no-reply@example.com>"
//! ```
//!
//! The table is checked when the file is read: an SMTP setting under another kind, or an SMTP
//! mailer without `host` or `from`, is a config error rather than a surprise at the first
//! registration.

use std::fmt;
use std::path::PathBuf;

use lettre::message::Mailbox;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// How verification codes reach people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailerConfig {
    /// The code is returned in the register response: anyone can prove any address. Only for
    /// trying the server out; refused on a non-loopback listen address unless allowed.
    Demo {
        /// Serve with the demo mailer on a network address anyway (`allow_demo_on_network`).
        allow_on_network: bool,
    },
    /// The code is written to the server log (an operator relays it).
    Log,
    /// The code is mailed through an SMTP relay.
    Smtp(SmtpConfig),
}

impl Default for MailerConfig {
    fn default() -> Self {
        MailerConfig::Demo { allow_on_network: false }
    }
}

/// How the connection to the SMTP relay is protected.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text (a relay on the same host or a trusted network only).
    None,
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl TlsMode {
    /// The usual port for this mode.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        }
    }
}

/// An SMTP relay and the sender of the mails.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// The relay's host name (also the name its TLS certificate must carry).
    pub host: String,
    /// The relay's port.
    pub port: u16,
    /// How the connection is protected.
    pub tls: TlsMode,
    /// User name for SMTP AUTH; none means no authentication.
    pub username: Option<String>,
    /// Password in the config file itself; prefer `password_file` or the
    /// `TANDEM_SMTP_PASSWORD` environment variable, which win over it.
    pub password: Option<String>,
    /// File holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// The `From` of every mail, `Name <address>` or a bare address.
    pub from: Mailbox,
    /// Longest wait for the relay, per command, in seconds.
    pub timeout_secs: u64,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .field("from", &self.from.to_string())
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// Default wait for the relay, in seconds.
const DEFAULT_TIMEOUT_SECS: u64 = 10;

/// The `[mailer]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MailerTable {
    kind: Kind,
    allow_demo_on_network: Option<bool>,
    host: Option<String>,
    port: Option<u16>,
    tls: Option<TlsMode>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    from: Option<String>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Demo,
    Log,
    Smtp,
}

impl TryFrom<MailerTable> for MailerConfig {
    type Error = String;

    fn try_from(t: MailerTable) -> Result<Self, String> {
        let smtp_keys = [
            ("host", t.host.is_some()),
            ("port", t.port.is_some()),
            ("tls", t.tls.is_some()),
            ("username", t.username.is_some()),
            ("password", t.password.is_some()),
            ("password_file", t.password_file.is_some()),
            ("from", t.from.is_some()),
            ("timeout_secs", t.timeout_secs.is_some()),
        ];
        if t.kind != Kind::Smtp
            && let Some((key, _)) = smtp_keys.iter().find(|(_, set)| *set)
        {
            return Err(format!("mailer: `{key}` is a setting of kind = \"smtp\" only"));
        }
        match t.kind {
            Kind::Demo => Ok(MailerConfig::Demo {
                allow_on_network: t.allow_demo_on_network.unwrap_or(false),
            }),
            Kind::Log | Kind::Smtp if t.allow_demo_on_network.is_some() => {
                Err("mailer: `allow_demo_on_network` is a setting of kind = \"demo\" only".into())
            }
            Kind::Log => Ok(MailerConfig::Log),
            Kind::Smtp => {
                let host = t.host.ok_or("mailer: kind = \"smtp\" needs `host`")?;
                let from = t.from.ok_or("mailer: kind = \"smtp\" needs `from`")?;
                let from = from
                    .parse::<Mailbox>()
                    .map_err(|e| format!("mailer: `from` is not a mail address ({e}): {from}"))?;
                if t.password.is_some() && t.password_file.is_some() {
                    return Err("mailer: set `password` or `password_file`, not both".into());
                }
                let tls = t.tls.unwrap_or_default();
                Ok(MailerConfig::Smtp(SmtpConfig {
                    host,
                    port: t.port.unwrap_or(tls.default_port()),
                    tls,
                    username: t.username,
                    password: t.password,
                    password_file: t.password_file,
                    from,
                    timeout_secs: t.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS),
                }))
            }
        }
    }
}

impl<'de> Deserialize<'de> for MailerConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MailerVisitor;

        impl<'de> Visitor<'de> for MailerVisitor {
            type Value = MailerConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"demo\", \"log\", or a [mailer] table with a `kind`")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<MailerConfig, E> {
                match name {
                    "demo" => Ok(MailerConfig::default()),
                    "log" => Ok(MailerConfig::Log),
                    "smtp" => Err(E::custom(
                        "mailer = \"smtp\" needs its relay: write a [mailer] table with \
                         kind = \"smtp\", host and from",
                    )),
                    other => Err(E::unknown_variant(other, &["demo", "log", "smtp"])),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MailerConfig, A::Error> {
                let table = MailerTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                MailerConfig::try_from(table).map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_any(MailerVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        mailer: MailerConfig,
    }

    fn parse(text: &str) -> Result<MailerConfig, String> {
        toml::from_str::<File>(text).map(|f| f.mailer).map_err(|e| e.to_string())
    }

    #[test]
    fn plain_strings_keep_working() {
        assert_eq!(parse("mailer = \"demo\"").unwrap(), MailerConfig::default());
        assert_eq!(parse("mailer = \"log\"").unwrap(), MailerConfig::Log);
        assert!(parse("mailer = \"smtp\"").unwrap_err().contains("kind = \"smtp\""));
        assert!(parse("mailer = \"carrier-pigeon\"").is_err());
    }

    #[test]
    fn an_smtp_table_has_defaults_by_tls_mode() {
        let config = parse(
            "[mailer]\nkind = \"smtp\"\nhost = \"smtp.example.com\"\nusername = \"tandem\"\n\
             from = \"Tandem <no-reply@example.com>\"\n",
        )
        .unwrap();
        let MailerConfig::Smtp(smtp) = config else { panic!("{config:?}") };
        assert_eq!((smtp.tls, smtp.port, smtp.timeout_secs), (TlsMode::Starttls, 587, 10));
        assert_eq!(smtp.from.email.to_string(), "no-reply@example.com");
        for (tls, port) in [("none", 25), ("tls", 465)] {
            let text = format!(
                "[mailer]\nkind = \"smtp\"\nhost = \"h.example\"\ntls = \"{tls}\"\nfrom = \"a@b.example\""
            );
            let MailerConfig::Smtp(smtp) = parse(&text).unwrap() else { panic!() };
            assert_eq!(smtp.port, port);
        }
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let text = "[mailer]\nkind = \"smtp\"\nhost = \"h.example\"\nusername = \"u\"\n\
                    password = \"hunter2-secret\"\nfrom = \"a@b.example\"";
        let config = parse(text).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"), "{config:?}");
    }

    #[test]
    fn wrong_tables_are_errors() {
        for (text, says) in [
            ("[mailer]\nkind = \"smtp\"\nfrom = \"a@b.example\"", "needs `host`"),
            ("[mailer]\nkind = \"smtp\"\nhost = \"h.example\"", "needs `from`"),
            ("[mailer]\nkind = \"smtp\"\nhost = \"h\"\nfrom = \"not an address\"", "`from`"),
            ("[mailer]\nkind = \"log\"\nhost = \"h.example\"", "kind = \"smtp\" only"),
            (
                "[mailer]\nkind = \"smtp\"\nhost = \"h\"\nfrom = \"a@b.c\"\nallow_demo_on_network = true",
                "demo",
            ),
            ("[mailer]\nkind = \"smtp\"\nhost = \"h\"\nfrom = \"a@b.c\"\ntls = \"ssl\"", "ssl"),
            ("[mailer]\nkind = \"demo\"\nhots = \"h\"", "hots"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(says), "{text:?} gave {err}");
        }
        let demo = parse("[mailer]\nkind = \"demo\"\nallow_demo_on_network = true").unwrap();
        assert_eq!(demo, MailerConfig::Demo { allow_on_network: true });
    }
}
