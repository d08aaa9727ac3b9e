//! A small SMTP server for the mail tests: it listens on a random loopback port, speaks enough
//! ESMTP for a real client (EHLO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT, with
//! SMTPUTF8 advertised), and keeps every mail it accepts. It can be told to refuse mail, as a
//! relay in trouble does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One mail as received.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message, headers and body, as sent after `DATA`.
    pub data: String,
    /// The `(user, password)` the client authenticated with, if it did.
    pub auth: Option<(String, String)>,
}

impl ReceivedMail {
    /// The first run of six digits in the body: the verification code.
    pub fn code(&self) -> String {
        let body = self.data.split("\r\n\r\n").skip(1).collect::<Vec<_>>().join("\r\n\r\n");
        let bytes = body.as_bytes();
        (0..bytes.len().saturating_sub(5))
            .map(|i| &bytes[i..i + 6])
            .find(|w| w.iter().all(u8::is_ascii_digit))
            .map(|w| String::from_utf8(w.to_vec()).unwrap())
            .unwrap_or_else(|| panic!("no code in the mail: {}", self.data))
    }
}

#[derive(Default)]
struct Shared {
    mails: Mutex<Vec<ReceivedMail>>,
    refusing: AtomicBool,
    /// When set, mail is accepted only after AUTH with these credentials.
    credentials: Option<(String, String)>,
}

/// A running sink. Stops when dropped.
pub struct SmtpSink {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    /// A sink that takes mail from anyone.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A sink that requires AUTH with `user` and `password`.
    pub async fn with_credentials(user: &str, password: &str) -> Self {
        Self::start_with(Some((user.to_owned(), password.to_owned()))).await
    }

    async fn start_with(credentials: Option<(String, String)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared { credentials, ..Shared::default() });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = accepting.clone();
                tokio::spawn(async move {
                    let _ = session(stream, shared).await;
                });
            }
        });
        Self { port, shared, task }
    }

    /// From now on, refuse every mail with a temporary failure (or accept again).
    pub fn refuse_mail(&self, refuse: bool) {
        self.shared.refusing.store(refuse, Ordering::SeqCst);
    }

    /// Every mail received so far.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.shared.mails.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until a mail to `address` has arrived, and returns the last one.
    pub async fn mail_to(&self, address: &str) -> ReceivedMail {
        for _ in 0..200 {
            if let Some(mail) =
                self.mails().into_iter().rev().find(|m| m.to.iter().any(|to| to == address))
            {
                return mail;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no mail to {address}; received {:?}", self.mails());
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The address inside `MAIL FROM:<a> ...` or `RCPT TO:<a>`.
fn angle_address(argument: &str) -> String {
    let start = argument.find('<').map_or(0, |i| i + 1);
    let end = argument[start..].find('>').map_or(argument.len(), |i| start + i);
    argument[start..end].to_owned()
}

fn decode(b64: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut from = None;
    let mut to = Vec::new();
    let mut auth = None;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-sink.test\r\n250-SMTPUTF8\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN\r\n".into()
        } else if upper.starts_with("HELO") {
            "250 sink.test\r\n".into()
        } else if upper.starts_with("AUTH PLAIN") {
            let initial = command[10..].trim();
            let initial = if initial.is_empty() {
                write.write_all(b"334 \r\n").await?;
                line.clear();
                lines.read_line(&mut line).await?;
                line.trim().to_owned()
            } else {
                initial.to_owned()
            };
            let decoded = decode(&initial);
            let mut parts = decoded.split('\0').skip(1);
            auth = Some((
                parts.next().unwrap_or_default().to_owned(),
                parts.next().unwrap_or_default().to_owned(),
            ));
            auth_reply(&shared, &auth)
        } else if upper.starts_with("AUTH LOGIN") {
            write.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            line.clear();
            lines.read_line(&mut line).await?;
            let user = decode(&line);
            write.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            line.clear();
            lines.read_line(&mut line).await?;
            auth = Some((user, decode(&line)));
            auth_reply(&shared, &auth)
        } else if upper.starts_with("MAIL FROM:") {
            if shared.refusing.load(Ordering::SeqCst) {
                "451 4.3.0 Mail refused for now, try again later\r\n".into()
            } else if shared.credentials.is_some() && auth != shared.credentials {
                "530 5.7.0 Authentication required\r\n".into()
            } else {
                from = Some(angle_address(&command[10..]));
                to.clear();
                "250 2.1.0 OK\r\n".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            to.push(angle_address(&command[8..]));
            "250 2.1.5 OK\r\n".into()
        } else if upper == "DATA" {
            write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            shared.mails.lock().unwrap().push(ReceivedMail {
                from: from.take().unwrap_or_default(),
                to: std::mem::take(&mut to),
                data,
                auth: auth.clone(),
            });
            "250 2.0.0 Queued\r\n".into()
        } else if upper == "RSET" {
            from = None;
            to.clear();
            "250 2.0.0 OK\r\n".into()
        } else if upper == "NOOP" {
            "250 2.0.0 OK\r\n".into()
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 Command not recognised\r\n".into()
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

fn auth_reply(shared: &Shared, auth: &Option<(String, String)>) -> String {
    match &shared.credentials {
        Some(expected) if Some(expected) != auth.as_ref() => {
            "535 5.7.8 Authentication credentials invalid\r\n".into()
        }
        _ => "235 2.7.0 Authentication successful\r\n".into(),
    }
}
