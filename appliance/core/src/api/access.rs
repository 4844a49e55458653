//! Who may call what. Every route is declared once in `ROUTES` with the roles
//! it admits; `router()` builds the API from this table alone, so a route
//! cannot exist without an access rule. Only `/livez` (which answers "ok"),
//! the dashboard's static files and the login route admit anyone.
//! Authentication cannot be switched off: there is no setting for it. A
//! caller proves who it is with a bearer token, or with the session cookie
//! a login gave it (`session`); state changes made with the cookie also need
//! the session's CSRF token.

use super::{ApiError, AppState};
use crate::clock::UnixMs;
use crate::security::tokens::AuthFailure;
use crate::security::{Caller, Lockout, Role, SecurityEvent, SecurityLog, TokenStore};
use crate::storage::{AuditAction, AuditEntry};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Longest request target accepted (path and query): 414 beyond.
pub const MAX_URI_BYTES: usize = 2048;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the liveness probe only.
    Public,
    /// A valid token with one of these roles.
    Roles(&'static [Role]),
}

/// One route of the API: its method and path, who may call it, and its handler.
#[derive(Clone)]
pub struct RouteRule {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
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
    /// The address is locked out for this many more seconds.
    LockedOut(u64),
    Missing,
    Expired,
    Invalid,
    /// The session cookie names no live session (ended, logged out, restarted).
    SessionEnded,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let message = match self {
            Refusal::LockedOut(retry_after) => {
                let mut response = ApiError::TooManyRequests(format!(
                    "too many failed attempts from this address; try again in {retry_after} s"
                ))
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                return response;
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

/// A caller that proved who it is.
pub struct Authenticated {
    pub caller: Caller,
    /// The session's CSRF token, when the caller came with the session cookie.
    pub csrf: Option<String>,
}

/// Who is calling, or why not: a bearer token first, else the session
/// cookie (whose token is checked again, so a revoked token ends it).
pub fn authenticate(
    guard: &Guard,
    request: &Request,
    now: UnixMs,
) -> Result<Authenticated, Refusal> {
    let client = client_of(request);
    if let Some(token) = bearer(request) {
        let caller = check_token(guard, client, Some(token), request.uri().path(), now)?;
        return Ok(Authenticated { caller, csrf: None });
    }
    let Some(id) = super::session::session_id(request.headers()) else {
        return Err(Refusal::Missing);
    };
    let found = guard.sessions.find(&id, now).ok_or(Refusal::SessionEnded)?;
    match check_token(guard, client, Some(&found.token), request.uri().path(), now) {
        Ok(caller) => Ok(Authenticated {
            caller,
            csrf: Some(found.csrf),
        }),
        Err(refusal) => {
            guard.sessions.close(&id);
            Err(match refusal {
                Refusal::LockedOut(_) => refusal,
                _ => Refusal::SessionEnded,
            })
        }
    }
}

/// Checks a presented token. Failures count towards the client's lockout
/// and go to the security log.
pub fn check_token(
    guard: &Guard,
    client: IpAddr,
    token: Option<&str>,
    route: &str,
    now: UnixMs,
) -> Result<Caller, Refusal> {
    guard
        .lockout
        .check(client, now)
        .map_err(Refusal::LockedOut)?;
    let result = match token {
        None => Err(AuthFailure::Missing),
        Some(token) => guard.tokens.authenticate(token, now),
    };
    match result {
        Ok(caller) => {
            guard.lockout.success(client);
            Ok(caller)
        }
        // No token at all is not a guess: refuse it without counting it.
        Err(AuthFailure::Missing) => Err(Refusal::Missing),
        Err(failure) => {
            guard.events.emit(SecurityEvent::LoginFailed {
                client: client.to_string(),
                reason: failure.as_str(),
                route: route.chars().take(200).collect(),
            });
            if let Some(until_ms) = guard.lockout.failure(client, now) {
                guard.events.emit(SecurityEvent::Lockout {
                    client: client.to_string(),
                    until_ms,
                });
            }
            Err(if failure == AuthFailure::Expired {
                Refusal::Expired
            } else {
                Refusal::Invalid
            })
        }
    }
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
    let Authenticated { caller, csrf } =
        match authenticate(&state.guard, &request, state.clock.now_ms()) {
            Ok(found) => found,
            Err(refusal) => return refusal.into_response(),
        };
    // A page of another origin can make the browser send the cookie, but
    // cannot read the CSRF token to send with it.
    let forged = csrf.is_some_and(|csrf| {
        !matches!(*request.method(), Method::GET | Method::HEAD)
            && !state.guard.sessions.csrf_matches(request.headers(), &csrf)
    });
    let target = format!("{} {}", request.method(), rule.path);
    // A route with parameters: which camera or anomaly, too.
    let path: Option<String> = rule
        .path
        .contains('{')
        .then(|| request.uri().path().chars().take(256).collect());
    let query: String = request
        .uri()
        .query()
        .unwrap_or("")
        .chars()
        .take(512)
        .collect();
    let response = if forged {
        state.guard.events.emit(SecurityEvent::AccessDenied {
            client: client_of(&request).to_string(),
            token: caller.name.clone(),
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
        next.run(request).await
    } else {
        state.guard.events.emit(SecurityEvent::AccessDenied {
            client: client_of(&request).to_string(),
            token: caller.name.clone(),
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
    let entry = AuditEntry {
        actor: caller.name,
        role: caller.role.as_str().to_string(),
        action,
        target,
        rows,
        detail: match path {
            Some(path) => {
                serde_json::json!({ "status": response.status().as_u16(), "query": query, "path": path })
            }
            None => serde_json::json!({ "status": response.status().as_u16(), "query": query }),
        },
    };
    // No answer leaves without its audit entry being durable: if the entry
    // cannot be written, the caller gets an error instead of the data.
    match state.writer.audit(state.clock.now_ms(), vec![entry]).await {
        Ok(_) => response,
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
    match authenticate(&state.guard, &request, state.clock.now_ms()) {
        Ok(_) => ApiError::NotFound("no such route".into()).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// Another method on a known route: 405 as JSON like every error (axum adds `Allow`).
pub async fn method_not_allowed(request: Request) -> Response {
    ApiError::MethodNotAllowed(format!("{} is not allowed on this route", request.method()))
        .into_response()
}

pub async fn livez() -> impl IntoResponse {
    (StatusCode::OK, "ok")
}
