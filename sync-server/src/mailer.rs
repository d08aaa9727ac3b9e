//! Delivery of verification codes.
//!
//! Tandem sends no mail itself yet: the `demo` mailer (the embedded default) hands the code
//! back in the register response, for trying the server out; the `log` mailer writes it to
//! the server log, for operators who relay logs to people. Neither claims to have emailed.

use serde::Deserialize;

/// How verification codes reach people.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mailer {
    /// Return the code in the response (`is_demo: true`, `demo_code`).
    #[default]
    Demo,
    /// Write the code to the server log; the response carries no code.
    Log,
}

/// What the register response says about the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Whether the code is returned in the response.
    pub is_demo: bool,
    /// The code, in demo mode only.
    pub demo_code: Option<String>,
}

impl Mailer {
    /// Delivers `code` for `email`.
    pub fn deliver(self, email: &str, code: &str) -> Delivery {
        match self {
            Mailer::Demo => Delivery { is_demo: true, demo_code: Some(code.to_owned()) },
            Mailer::Log => {
                tracing::info!(target: "tandem::mailer", %email, %code, "verification code");
                Delivery { is_demo: false, demo_code: None }
            }
        }
    }
}
