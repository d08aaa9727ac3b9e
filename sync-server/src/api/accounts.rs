//! `register`, `verify` and `login`: making an account, proving its email, and getting a token.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use tandem_protocol::UserId;
use utoipa::ToSchema;

use super::envelope::{Envelope, MessageEnvelope, ok, ok_message};
use super::error::ApiError;
use super::extract::{ApiJson, ClientAddr};
use crate::auth::code::{CODE_TTL, CodeHasher, MAX_ATTEMPTS};
use crate::auth::email::Email;
use crate::auth::password::check_password;
use crate::auth::throttle::{Action, RetryAfter};
use crate::mailer::SendError;
use crate::metrics::{LoginOutcome, VerifyOutcome};
use crate::state::AppState;
use crate::store::accounts::{CodeCheck, NewRegistration};
use crate::store::now_ms;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/todolist/register", post(register))
        .route("/api/todolist/verify", post(verify))
        .route("/api/todolist/login", post(login))
}

/// `register` and `login` bodies.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    /// The email. Case, Unicode normalisation, full-width forms and the IDNA spelling of the
    /// domain do not matter; addresses mixing scripts in a part are refused.
    pub email: String,
    /// 8 to 128 characters, used exactly as given.
    pub password: String,
}

/// `register` result.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterData {
    /// Whether the code is returned here (demo mailer) rather than sent.
    pub is_demo: bool,
    /// The code, in demo mode only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demo_code: Option<String>,
}

/// `verify` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// The email registered.
    pub email: String,
    /// The six-digit code.
    pub code: String,
}

/// `login` result.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginData {
    /// Bearer token for every other call.
    pub token: String,
    /// Who signed in.
    pub user: UserData,
}

/// An account as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserData {
    /// The account id.
    pub id: u64,
    /// The normalised email.
    pub email: String,
}

/// Applies `email`'s pending invitations to `user`; on failure they stay pending and are
/// tried again at the next login.
async fn accept_invitations(state: &AppState, user: UserId, email: &Email) {
    match state.store.accept_invitations(user, email).await {
        Ok(applied) => state.metrics.invitations_applied.increment(applied as u64),
        Err(err) => tracing::warn!(error = ?err, %user, "could not apply pending invitations"),
    }
}

fn throttled(wait: RetryAfter) -> ApiError {
    ApiError::RateLimited(wait.0)
}

fn internal(err: impl std::error::Error + Send + Sync + 'static) -> ApiError {
    ApiError::Internal(anyhow::Error::new(err))
}

/// Register an account; a code is sent to verify the email. Registering an unverified email
/// again replaces its password and code.
#[utoipa::path(post, path = "/api/todolist/register", tag = "accounts", request_body = Credentials,
    responses(
        (status = 200, description = "Verification code sent.", body = Envelope<RegisterData>),
        (status = 400, description = "Malformed body"),
        (status = 409, description = "A verified account has this email"),
        (status = 422, description = "Invalid email or password length"),
        (status = 429, description = "Too many attempts"),
        (status = 503, description = "The code could not be mailed; register again later"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    addr: ClientAddr,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let email = Email::parse(&body.email).map_err(|e| ApiError::Invalid(e.to_string()))?;
    state.throttle.check(Action::Register, email.as_str(), addr.0).map_err(throttled)?;
    check_password(&body.password).map_err(|e| ApiError::Invalid(e.to_string()))?;
    state.mailer.check_recipient(&email).map_err(|e| ApiError::Invalid(e.to_string()))?;
    let password_hash = state.passwords.hash(body.password).await.map_err(internal)?;
    let code = CodeHasher::generate();
    let registration = NewRegistration {
        code_hash: state.codes.hash(email.as_str(), &code),
        code_expires_at: now_ms() + CODE_TTL.as_millis() as i64,
        email,
        password_hash,
    };
    state.store.register(UserId(state.ids.next_id()), &registration).await?;
    // Stored first, so that a code that was delivered always works. If delivery fails, the
    // account stays unverified with a code nobody has: registering again replaces it.
    let delivery = match state.mailer.deliver(&registration.email, &code).await {
        Ok(delivery) => delivery,
        Err(err @ SendError::Recipient { .. }) => return Err(ApiError::Invalid(err.to_string())),
        Err(err) => return Err(ApiError::MailUnavailable(anyhow::Error::new(err))),
    };
    state.metrics.registrations.increment(1);
    Ok(ok(
        "Verification code sent.",
        RegisterData { is_demo: delivery.is_demo, demo_code: delivery.demo_code },
    ))
}

/// Verify an email with the code sent to it. Lists shared with this email before it had an
/// account become the account's.
#[utoipa::path(post, path = "/api/todolist/verify", tag = "accounts", request_body = VerifyRequest,
    responses(
        (status = 200, description = "Account verified. Please login.", body = MessageEnvelope),
        (status = 400, description = "Malformed body"),
        (status = 409, description = "Already verified"),
        (status = 422, description = "Wrong, expired or used-up code"),
        (status = 429, description = "Too many attempts"),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    addr: ClientAddr,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Response, ApiError> {
    let no_code = || {
        ApiError::Invalid(
            "No valid verification code for this email; register again to get a new one.".into(),
        )
    };
    let email = Email::parse(&body.email).map_err(|_| no_code())?;
    state.throttle.check(Action::Verify, email.as_str(), addr.0).map_err(throttled)?;
    let code = body.code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        state.metrics.verification(VerifyOutcome::WrongCode);
        return Err(ApiError::Invalid("The verification code is six digits.".into()));
    }
    let codes = state.codes.clone();
    let outcome = state
        .store
        .check_code(&email, MAX_ATTEMPTS, |stored| codes.matches(email.as_str(), code, stored))
        .await?;
    let counted = match outcome {
        CodeCheck::Verified(_) => Some(VerifyOutcome::Ok),
        CodeCheck::Wrong { .. } => Some(VerifyOutcome::WrongCode),
        CodeCheck::NoValidCode => Some(VerifyOutcome::Expired),
        CodeCheck::AlreadyVerified => None,
    };
    if let Some(counted) = counted {
        state.metrics.verification(counted);
    }
    match outcome {
        CodeCheck::Verified(user) => {
            accept_invitations(&state, user, &email).await;
            Ok(ok_message("Account verified. Please login."))
        }
        CodeCheck::Wrong { tries_left } if tries_left > 0 => Err(ApiError::Invalid(format!(
            "Wrong verification code; {tries_left} {} left.",
            if tries_left == 1 { "try" } else { "tries" }
        ))),
        CodeCheck::Wrong { .. } => Err(ApiError::Invalid(
            "Wrong verification code; the code is now void. Register again to get a new one."
                .into(),
        )),
        CodeCheck::NoValidCode => Err(no_code()),
        CodeCheck::AlreadyVerified => {
            Err(ApiError::Conflict("Account already verified. Please login.".into()))
        }
    }
}

/// Log in with a verified account and get a bearer token.
#[utoipa::path(post, path = "/api/todolist/login", tag = "accounts", request_body = Credentials,
    responses(
        (status = 200, description = "Login successful", body = Envelope<LoginData>),
        (status = 400, description = "Malformed body"),
        (status = 401, description = "Wrong email or password (one answer for both)"),
        (status = 403, description = "Account not verified yet"),
        (status = 429, description = "Too many attempts"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    addr: ClientAddr,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let failed = || {
        state.metrics.login(LoginOutcome::Failed);
        ApiError::Unauthorized("Invalid email or password.".into())
    };
    let email = Email::parse(&body.email).ok();
    let throttle_key = email.as_ref().map_or("", Email::as_str);
    if let Err(wait) = state.throttle.check(Action::Login, throttle_key, addr.0) {
        state.metrics.login(LoginOutcome::Throttled);
        return Err(throttled(wait));
    }
    let user = match &email {
        Some(email) => state.store.user_by_email(email).await?,
        None => None,
    };
    // The hash is checked even for unknown emails, so both failures take the same time.
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !state.passwords.verify(body.password, hash).await.map_err(internal)? {
        return Err(failed());
    }
    let (Some(user), Some(email)) = (user, email) else { return Err(failed()) };
    if !user.verified {
        state.metrics.login(LoginOutcome::Unverified);
        return Err(ApiError::Forbidden(
            "Account not verified yet: enter the code sent to your email (POST verify).".into(),
        ));
    }
    tracing::Span::current().record("user_id", user.id.get());
    accept_invitations(&state, user.id, &email).await;
    let token = state.tokens.issue(user.id, &user.email);
    state.metrics.login(LoginOutcome::Ok);
    Ok(ok(
        "Login successful",
        LoginData { token, user: UserData { id: user.id.get(), email: user.email } },
    ))
}
