//! Who may call what. Every route is declared once in `ROUTES` with the roles
//! it admits; `router()` builds the API from this table alone, so a route
//! cannot exist without an access rule. Only `/livez` (which answers "ok"),
//! the dashboard's static files and the login route admit anyone.
//! Authentication cannot be switched off: there is no setting for it. A
//! caller proves who it is with a bearer token, or with the session cookie
//! a login gave it (`session`); state changes made with the cookie also need
//! the session's CSRF token. Every authenticated request spends one of its
//! token's allowance (`security::rate`): beyond it, 429 with `Retry-After`.
//!
//! Presenting a token is a login, limited by `security::lockout` (per token
//! id, and per client, which is only slowed). Checking again a caller that
//! logged in before (its session cookie, a live stream each second) is not:
//! `recheck` never touches the lockout.

use super::session::SessionKey;
use super::{ApiError, AppState};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use headcount_domain::clock::UnixMs;
use headcount_domain::disclosure::policy::Class;
use headcount_domain::security::tokens::{presented_id, AuthFailure};
use headcount_domain::security::{
    Caller, Grant, Lockout, RateLimit, Role, SecurityEvent, SecurityLog,
};
use headcount_store::{pseudonym, AuditAction, AuditEntry, ReadOutcome, TokenStore};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Longest request target accepted (path and query): 414 beyond.
pub const MAX_URI_BYTES: usize = 2048;
/// At most this much of an accepted request's path and query is audited.
const MAX_AUDITED_PATH: usize = 256;
const MAX_AUDITED_QUERY: usize = 512;
/// How late a slowed client hears of each failed attempt: one connection
/// then guesses once a second at most.
pub const SLOWED_ANSWER_DELAY: Duration = Duration::from_secs(1);

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the liveness probe only.
    Public,
    /// A valid token with one of these roles.
    Roles(&'static [Role]),
}

/// One route of the API: its method and path, who may call it, what it
/// serves (checked against the disclosure policy for each role it admits),
/// and its handler.
#[derive(Clone)]
pub struct RouteRule {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub serves: &'static [Class],
    pub handler: fn() -> MethodRouter<AppState>,
}

impl std::fmt::Debug for RouteRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {:?}", self.method, self.path, self.access)
    }
}

/// Authentication state shared by every request.
pub struct Guard {
    pub tokens: Arc<TokenStore>,
    pub sessions: super::session::Sessions,
    pub lockout: Lockout,
    /// Each token's allowance of requests.
    pub rate: RateLimit,
    pub events: Arc<SecurityLog>,
}

/// The caller's address, where the server recorded one.
pub fn client_of(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Why a request is turned away before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The presented token's id is locked for this many more seconds.
    TokenLocked(u64),
    /// A failed attempt from a client slowed for this many more seconds.
    Slowed(u64),
    Missing,
    Expired,
    Invalid,
    /// The session cookie names no live session (ended, logged out, restarted).
    SessionEnded,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let message = match self {
            Refusal::TokenLocked(retry_after) => {
                return too_many_requests(
                    format!(
                        "too many failed attempts with this token; try again in {retry_after} s"
                    ),
                    retry_after,
                )
            }
            Refusal::Slowed(retry_after) => {
                return too_many_requests(
                    format!(
                        "the token is not valid, and this address failed too often: its failures \
                         are answered slowly for {retry_after} s more (valid tokens are not)"
                    ),
                    retry_after,
                )
            }
            Refusal::Missing => {
                "a token is required: send `Authorization: Bearer <token>`, or log in at /"
            }
            Refusal::SessionEnded => "the session has ended; log in again",
            Refusal::Expired => "the token has expired",
            Refusal::Invalid => "the token is not valid",
        };
        let mut response = ApiError::Unauthorized(message.into()).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"headcount\""),
        );
        response
    }
}

/// The answer to a refused request: a slowed client's failure only after
/// `SLOWED_ANSWER_DELAY`.
pub async fn refuse(refusal: Refusal) -> Response {
    if matches!(refusal, Refusal::Slowed(_)) {
        tokio::time::sleep(SLOWED_ANSWER_DELAY).await;
    }
    refusal.into_response()
}

/// 429 with `Retry-After`.
fn too_many_requests(message: String, retry_after_s: u64) -> Response {
    let mut response = ApiError::TooManyRequests(message).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
    response
}

/// Spends one request of the caller's token's allowance; past it, the 429
/// to answer. Refused requests are not audited one by one but counted (one
/// entry per token and minute), and reported to the security log once a
/// minute per token.
pub async fn spend(
    state: &AppState,
    caller: &Caller,
    client: IpAddr,
    route: &str,
    now: UnixMs,
) -> Result<(), Response> {
    let Err(refused) = state.guard.rate.take(&caller.id, now) else {
        return Ok(());
    };
    if refused.report {
        state.guard.events.emit(SecurityEvent::RateLimited {
            client: client.to_string(),
            token: caller.pseudonym(),
            route: route.chars().take(200).collect(),
        });
    }
    state
        .writer
        .count_refused(now, caller.pseudonym(), caller.role.as_str().to_string())
        .await;
    Err(too_many_requests(
        format!(
            "this token is over its rate limit; try again in {} s",
            refused.retry_after_s
        ),
        refused.retry_after_s,
    ))
}

/// What the API keeps to check a caller again without a new login: its
/// session, or the grant of the bearer token it came with.
#[derive(Debug, Clone)]
pub enum Credential {
    Session(SessionKey),
    Bearer(Grant),
}

/// A caller that proved who it is.
pub struct Authenticated {
    pub caller: Caller,
    /// The session's CSRF token, when the caller came with the session cookie.
    pub csrf: Option<String>,
    pub credential: Credential,
}

/// Who is calling, or why not: a bearer token first (a login), else the
/// session cookie (checked again, not a login).
pub fn authenticate(
    guard: &Guard,
    request: &Request,
    now: UnixMs,
) -> Result<Authenticated, Refusal> {
    if let Some(token) = bearer(request) {
        let client = client_of(request);
        let (caller, grant) = check_token(guard, client, token, request.uri().path(), now)?;
        return Ok(Authenticated {
            caller,
            csrf: None,
            credential: Credential::Bearer(grant),
        });
    }
    let id = super::session::session_id(request.headers()).ok_or(Refusal::Missing)?;
    recheck(guard, &Credential::Session(SessionKey::of(&id)), now)
}

/// Runs `work`, which blocks (a token read from SQLite), without holding
/// up the other requests of a multi-threaded runtime: the worker hands its
/// queue to another meanwhile. On a single-threaded runtime (tests, the
/// fuzz target) it simply runs.
pub fn off_the_runtime<T>(work: impl FnOnce() -> T) -> T {
    let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
    match flavor {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Checks again a caller that logged in before: the session of a cookie,
/// or (for a live stream, each second) a bearer token's grant. Not a login:
/// it neither counts towards the lockout nor is refused by it, so no
/// lockout ends a valid session. A revoked or expired token ends the
/// session or the stream, reported as `SESSION_ENDED`.
pub fn recheck(
    guard: &Guard,
    credential: &Credential,
    now: UnixMs,
) -> Result<Authenticated, Refusal> {
    let (grant, csrf) = match credential {
        Credential::Session(key) => {
            let found = guard
                .sessions
                .find(*key, now)
                .ok_or(Refusal::SessionEnded)?;
            (found.grant, Some(found.csrf))
        }
        Credential::Bearer(grant) => (grant.clone(), None),
    };
    match guard.tokens.recheck(&grant, now) {
        Ok(caller) => Ok(Authenticated {
            caller,
            csrf,
            credential: credential.clone(),
        }),
        Err(failure) => {
            let ended = match credential {
                Credential::Session(key) => {
                    guard.sessions.close(*key);
                    "session"
                }
                Credential::Bearer(_) => "live stream",
            };
            guard.events.emit(SecurityEvent::SessionEnded {
                token: pseudonym(grant.token_id()),
                reason: failure.as_str(),
                ended,
            });
            Err(Refusal::SessionEnded)
        }
    }
}

/// Checks a presented token: a bearer token or a login. A locked token id
/// is refused before its secret is checked. A failure counts towards the
/// lock of the token id it names (an issued token's only) and the slowing
/// of its client, and is reported, unless the client is slowed already
/// (then it is answered late, and only a lock it causes is reported). The
/// client's failures never refuse a valid token.
pub fn check_token(
    guard: &Guard,
    client: IpAddr,
    token: &str,
    route: &str,
    now: UnixMs,
) -> Result<(Caller, Grant), Refusal> {
    let id = presented_id(token);
    if let Some(id) = id {
        guard
            .lockout
            .token_locked(id, now)
            .map_err(Refusal::TokenLocked)?;
    }
    let failure = match guard.tokens.check(token, now) {
        Ok(found) => return Ok(found),
        Err(failure) => failure,
    };
    // Made-up ids lock nothing (and cannot fill the lockout's memory).
    let issued = id.filter(|_| !matches!(failure, AuthFailure::Malformed | AuthFailure::Unknown));
    let counted = guard.lockout.failure(client, issued, now);
    if counted.slowed.is_none() {
        guard.events.emit(SecurityEvent::LoginFailed {
            client: client.to_string(),
            token: issued.map(pseudonym),
            reason: failure.as_str(),
            route: route.chars().take(200).collect(),
        });
    }
    if let Some(until_ms) = counted.client_slowed_until {
        guard.events.emit(SecurityEvent::Throttled {
            client: client.to_string(),
            until_ms,
        });
    }
    if let (Some(id), Some(until_ms)) = (issued, counted.token_locked_until) {
        guard.events.emit(SecurityEvent::Lockout {
            token: pseudonym(id),
            client: client.to_string(),
            until_ms,
        });
    }
    Err(match (counted.slowed, failure) {
        (Some(seconds), _) => Refusal::Slowed(seconds),
        (None, AuthFailure::Expired) => Refusal::Expired,
        (None, _) => Refusal::Invalid,
    })
}

/// The middleware in front of every route: admits the route's roles only,
/// and hands the handler the `Caller`.
pub async fn require(
    State((state, rule)): State<(AppState, RouteRule)>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.uri().to_string().len() > MAX_URI_BYTES {
        return ApiError::UriTooLong.into_response();
    }
    let Access::Roles(roles) = rule.access else {
        return next.run(request).await;
    };
    let Authenticated {
        caller,
        csrf,
        credential,
    } = match off_the_runtime(|| authenticate(&state.guard, &request, state.clock.now_ms())) {
        Ok(found) => found,
        Err(refusal) => return refuse(refusal).await,
    };
    let client = client_of(&request);
    if let Err(refused) = spend(&state, &caller, client, rule.path, state.clock.now_ms()).await {
        return refused;
    }
    // A page of another origin can make the browser send the cookie, but
    // cannot read the CSRF token to send with it.
    let forged = csrf.is_some_and(|csrf| {
        !matches!(*request.method(), Method::GET | Method::HEAD)
            && !state.guard.sessions.csrf_matches(request.headers(), &csrf)
    });
    let method = request.method().clone();
    let target = format!("{method} {}", rule.path);
    // A route with parameters: which camera or anomaly, too.
    let path: Option<String> = rule.path.contains('{').then(|| {
        request
            .uri()
            .path()
            .chars()
            .take(MAX_AUDITED_PATH)
            .collect()
    });
    let query: String = request
        .uri()
        .query()
        .unwrap_or("")
        .chars()
        .take(MAX_AUDITED_QUERY)
        .collect();
    let response = if forged {
        state.guard.events.emit(SecurityEvent::AccessDenied {
            client: client.to_string(),
            token: caller.pseudonym(),
            role: caller.role.as_str(),
            route: format!("{} (no valid CSRF token)", rule.path),
        });
        ApiError::Forbidden(format!(
            "{} {} with the session cookie needs the session's CSRF token in the `X-CSRF-Token` header",
            request.method(),
            rule.path
        ))
        .into_response()
    } else if roles.contains(&caller.role) {
        request.extensions_mut().insert(caller.clone());
        request.extensions_mut().insert(credential);
        next.run(request).await
    } else {
        state.guard.events.emit(SecurityEvent::AccessDenied {
            client: client.to_string(),
            token: caller.pseudonym(),
            role: caller.role.as_str(),
            route: rule.path.to_string(),
        });
        ApiError::Forbidden(format!(
            "the {} role may not use {}",
            caller.role, rule.path
        ))
        .into_response()
    };
    let rows = response
        .extensions()
        .get::<super::RowsServed>()
        .map_or(0, |r| r.0);
    let action = if response.extensions().get::<super::Exported>().is_some() {
        AuditAction::Export
    } else {
        AuditAction::ApiAccess
    };
    // The route template always; the path's parameters and the query only
    // once the handler accepted them (a 2xx): a refused request cannot put
    // arbitrary text in the log, only its status.
    let status = response.status();
    let detail = match (path, status.is_success()) {
        (Some(path), true) => {
            serde_json::json!({ "status": status.as_u16(), "query": query, "path": path })
        }
        (None, true) => serde_json::json!({ "status": status.as_u16(), "query": query }),
        (_, false) => serde_json::json!({ "status": status.as_u16() }),
    };
    let entry = AuditEntry {
        actor: caller.pseudonym(),
        role: caller.role.as_str().to_string(),
        action,
        target,
        rows,
        detail,
    };
    // No answer leaves without its audit entry being durable (for a read
    // repeated within the minute: without the first one's, and counted): if
    // the entry cannot be written, the caller gets an error, not the data.
    let now = state.clock.now_ms();
    let recorded = if matches!(method, Method::GET | Method::HEAD) {
        state.writer.audit_read(now, entry).await
    } else {
        let written = state.writer.audit(now, vec![entry]).await;
        written.map(|_| ReadOutcome::Recorded)
    };
    match recorded {
        Ok(ReadOutcome::Recorded) => response,
        Ok(ReadOutcome::RefusedForSpace) => {
            let storage = state.storage.get();
            ApiError::Unavailable(format!(
                "the disk is nearly full ({} MB free, {} MB kept free): new reads are refused so that \
                 the audit log cannot fill it; counting goes on, and reads repeated within the minute \
                 are still answered",
                storage.free_bytes.unwrap_or(0) / 1_000_000,
                storage.min_free_bytes / 1_000_000
            ))
            .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot write the audit log; refusing to answer");
            ApiError::Unavailable("this access could not be recorded in the audit log, so nothing is served; try again".into())
                .into_response()
        }
    }
}

/// Unknown routes: 401 without a valid token (no probing for routes), 404 with one.
pub async fn not_found(State(state): State<AppState>, request: Request) -> Response {
    if request.uri().to_string().len() > MAX_URI_BYTES {
        return ApiError::UriTooLong.into_response();
    }
    let now = state.clock.now_ms();
    match authenticate(&state.guard, &request, now) {
        Ok(found) => {
            let client = client_of(&request);
            match spend(&state, &found.caller, client, request.uri().path(), now).await {
                Ok(()) => ApiError::NotFound("no such route".into()).into_response(),
                Err(refused) => refused,
            }
        }
        Err(refusal) => refuse(refusal).await,
    }
}

/// Another method on a known route: 405 as JSON like every error (axum adds `Allow`).
pub async fn method_not_allowed(request: Request) -> Response {
    ApiError::MethodNotAllowed(format!("{} is not allowed on this route", request.method()))
        .into_response()
}

/// Live while every stage of the appliance beats; a stage silent for too
/// long makes it 503 (and stops the systemd watchdog's feeding).
pub async fn livez(State(state): State<AppState>) -> Response {
    let silent = state.health.silent_stages();
    if silent.is_empty() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("silent: {}", silent.join(", ")),
        )
            .into_response()
    }
}
