//! The server's REST API (`/api/todolist/...`), as the client calls it: account, sharing, id
//! reservation and a list's history. Everything else the client does is local.
//!
//! Every response is the envelope `{"code", "message", "data"}` with the HTTP status equal to
//! `code`. Failures map onto [`Error`] by status (see [`error_for_status`]); a server that
//! cannot be reached is [`Error::Offline`].

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tandem_protocol::{ListId, Role, UserId};

use crate::Error;
use crate::history::{HistoryPage, HistoryQuery};

/// How long to wait for a connection to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole REST call may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most ids one `reserve_ids` call may ask for (the server's limit).
pub const MAX_RESERVE: usize = 100;

/// The answer to `register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterOutcome {
    /// The server runs in demo mode: the code comes back here instead of by email.
    pub is_demo: bool,
    /// The verification code, in demo mode only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demo_code: Option<String>,
}

/// A user as the server describes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The account's id.
    pub id: UserId,
    /// The account's email.
    pub email: String,
}

/// The `data` of a successful `login`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LoginData {
    pub(crate) token: String,
    pub(crate) user: User,
}

#[derive(Debug, Deserialize)]
struct ReservedIds {
    ids: Vec<u64>,
}

/// The response envelope.
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    message: String,
    data: Option<T>,
}

/// Calls the REST API of one server.
#[derive(Debug, Clone)]
pub(crate) struct RestClient {
    http: reqwest::Client,
    base: String,
}

impl RestClient {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8080`).
    pub(crate) fn new(base: &str) -> Result<Self, Error> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::InvalidInput(format!(
                "server URL {base:?} must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, base })
    }

    /// The server's base URL, without a trailing slash.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) async fn register(
        &self,
        email: &str,
        password: &str,
    ) -> Result<RegisterOutcome, Error> {
        let body = json!({ "email": email, "password": password });
        self.post("register", None, &body).await?.1.ok_or_else(|| missing("register"))
    }

    pub(crate) async fn verify(&self, email: &str, code: &str) -> Result<(), Error> {
        let body = json!({ "email": email, "code": code });
        self.post::<serde_json::Value>("verify", None, &body).await.map(drop)
    }

    pub(crate) async fn login(&self, email: &str, password: &str) -> Result<LoginData, Error> {
        let body = json!({ "email": email, "password": password });
        self.post("login", None, &body).await?.1.ok_or_else(|| missing("login"))
    }

    pub(crate) async fn reserve_ids(
        &self,
        token: &str,
        count: usize,
    ) -> Result<Vec<ListId>, Error> {
        let body = json!({ "count": count.clamp(1, MAX_RESERVE) });
        let data: ReservedIds = self
            .post("reserve_ids", Some(token), &body)
            .await?
            .1
            .ok_or_else(|| missing("reserve_ids"))?;
        let ids: Vec<ListId> = data.ids.into_iter().map(ListId).collect();
        if let Some(bad) = ids.iter().find(|id| !id.is_valid()) {
            return Err(Error::Internal(format!("the server reserved an invalid list id {bad}")));
        }
        Ok(ids)
    }

    pub(crate) async fn share(
        &self,
        token: &str,
        list: ListId,
        email: &str,
        role: Role,
    ) -> Result<String, Error> {
        let body = json!({ "list_id": list, "target_email": email, "permission": role.as_str() });
        Ok(self.post::<serde_json::Value>("sharelist", Some(token), &body).await?.0)
    }

    pub(crate) async fn unshare(
        &self,
        token: &str,
        list: ListId,
        email: &str,
    ) -> Result<String, Error> {
        let body = json!({ "list_id": list, "target_email": email });
        Ok(self.post::<serde_json::Value>("unshare", Some(token), &body).await?.0)
    }

    pub(crate) async fn delete(&self, token: &str, list: ListId) -> Result<(), Error> {
        let body = json!({ "id": list });
        self.post::<serde_json::Value>("delete", Some(token), &body).await.map(drop)
    }

    pub(crate) async fn history(
        &self,
        token: &str,
        list: ListId,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, Error> {
        let mut params = vec![("id", list.get().to_string())];
        if let Some(item) = query.item {
            params.push(("item", item.get().to_string()));
        }
        if let Some(before) = query.before {
            params.push(("before", before.to_string()));
        }
        if let Some(limit) = query.limit {
            params.push(("limit", limit.to_string()));
        }
        let url = format!("{}/api/todolist/history", self.base);
        let request = self.http.get(&url).query(&params).bearer_auth(token);
        self.send("history", &url, request).await?.1.ok_or_else(|| missing("history"))
    }

    /// POSTs `body` to `/api/todolist/{call}` and returns the envelope's message and data.
    async fn post<T: DeserializeOwned>(
        &self,
        call: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<(String, Option<T>), Error> {
        let url = format!("{}/api/todolist/{call}", self.base);
        let mut request = self.http.post(&url).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(call, &url, request).await
    }

    /// Sends a request for `call` and returns the envelope's message and data.
    async fn send<T: DeserializeOwned>(
        &self,
        call: &str,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(String, Option<T>), Error> {
        let response = request.send().await.map_err(|e| transport_error(url, e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| transport_error(url, e))?;
        let envelope: Option<Envelope<T>> = serde_json::from_slice(&bytes).ok();
        if !status.is_success() {
            let message = match serde_json::from_slice::<Envelope<serde_json::Value>>(&bytes) {
                Ok(envelope) if !envelope.message.is_empty() => envelope.message,
                _ => status.canonical_reason().unwrap_or("error").to_owned(),
            };
            return Err(error_for_status(status, format!("{call}: {message}")));
        }
        let envelope = envelope.ok_or_else(|| {
            Error::Internal(format!("{call}: the server's answer is not the expected envelope"))
        })?;
        Ok((envelope.message, envelope.data))
    }
}

fn missing(call: &str) -> Error {
    Error::Internal(format!("{call}: the server's answer has no data"))
}

/// A failure before any HTTP status arrived.
fn transport_error(url: &str, e: reqwest::Error) -> Error {
    if e.is_connect() || e.is_timeout() || e.is_request() {
        Error::Offline(format!("cannot reach {url}: {}", root_cause(&e)))
    } else {
        Error::Internal(format!("{url}: {e}"))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The error for an HTTP failure status, per the REST contract.
pub fn error_for_status(status: StatusCode, message: String) -> Error {
    match status.as_u16() {
        401 => Error::Unauthorized(message),
        403 => Error::Forbidden(message),
        404 => Error::NotFound(message),
        400 | 413 | 422 => Error::InvalidInput(message),
        409 => Error::Conflict(message),
        429 => Error::RateLimited(message),
        502..=504 => Error::Offline(message),
        _ => Error::Internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_error_enum() {
        let cases = [
            (400, Error::InvalidInput("m".into())),
            (401, Error::Unauthorized("m".into())),
            (403, Error::Forbidden("m".into())),
            (404, Error::NotFound("m".into())),
            (409, Error::Conflict("m".into())),
            (413, Error::InvalidInput("m".into())),
            (422, Error::InvalidInput("m".into())),
            (429, Error::RateLimited("m".into())),
            (503, Error::Offline("m".into())),
            (500, Error::Internal("m".into())),
        ];
        for (code, expected) in cases {
            assert_eq!(error_for_status(StatusCode::from_u16(code).unwrap(), "m".into()), expected);
        }
    }

    #[test]
    fn server_urls_must_be_http() {
        assert!(RestClient::new("ftp://x").is_err());
        assert_eq!(
            RestClient::new("http://127.0.0.1:8080/").unwrap().base(),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn envelopes_decode_with_and_without_data() {
        let e: Envelope<RegisterOutcome> = serde_json::from_str(
            r#"{"code":200,"message":"Verification code sent.","data":{"is_demo":true,"demo_code":"123456"}}"#,
        )
        .unwrap();
        assert_eq!(e.data.unwrap().demo_code.as_deref(), Some("123456"));
        let e: Envelope<serde_json::Value> =
            serde_json::from_str(r#"{"code":200,"message":"Account verified. Please login."}"#)
                .unwrap();
        assert!(e.data.is_none());
        let login: Envelope<LoginData> = serde_json::from_str(
            r#"{"code":200,"message":"Login successful","data":{"token":"t","user":{"id":101,"email":"a@b.c"}}}"#,
        )
        .unwrap();
        assert_eq!(login.data.unwrap().user.id, UserId(101));
    }
}
