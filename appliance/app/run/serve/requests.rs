//! What every request passes before the router, cheaply and without
//! authentication: it must name this appliance in `Host` (421 otherwise,
//! against DNS rebinding), and its body must arrive whole within the body
//! deadline and be at most `MAX_BODY_BYTES` (408 and 413 otherwise, and the
//! connection is closed), so a handler never waits on a slow client. Over
//! TLS every answer carries `Strict-Transport-Security`.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use headcount_domain::security::hosts::AllowedHosts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tower::ServiceExt;

/// The largest request body read: a zone editor's geometry is a few kB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// A year; browsers that trust the certificate then never try plain HTTP.
const HSTS: &str = "max-age=31536000";

/// What the requests of every connection share.
pub struct Front {
    pub router: Router,
    pub hosts: AllowedHosts,
    pub body_deadline: Duration,
    pub tls: bool,
}

/// One connection's addresses: the client's, and ours it arrived on.
#[derive(Clone, Copy)]
pub struct Addresses {
    pub peer: SocketAddr,
    pub local: IpAddr,
}

impl Front {
    pub async fn answer(&self, request: Request<Incoming>, addresses: Addresses) -> Response {
        let mut response = match self.admitted(request, addresses).await {
            Ok(request) => match self.router.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            Err(refusal) => refusal,
        };
        if self.tls {
            response.headers_mut().insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static(HSTS),
            );
        }
        response
    }

    /// The request with its whole body, or the answer that refuses it.
    async fn admitted(
        &self,
        request: Request<Incoming>,
        addresses: Addresses,
    ) -> Result<Request<Body>, Response> {
        match named_host(&request) {
            None => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "a request must name one host (the Host header)".into(),
                ))
            }
            Some(host) if !self.hosts.allows(host, addresses.local) => {
                return Err(refuse(
                    StatusCode::MISDIRECTED_REQUEST,
                    "this appliance does not answer to that host name; add it to api.hosts".into(),
                ))
            }
            Some(_) => {}
        }
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(ConnectInfo(addresses.peer));
        let body = whole_body(body, self.body_deadline).await?;
        Ok(Request::from_parts(parts, body))
    }
}

/// The host a request names: the target's authority when it is in absolute
/// form (which takes precedence), else the one `Host` header.
fn named_host(request: &Request<Incoming>) -> Option<&str> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let header = match (hosts.next(), hosts.next()) {
        (Some(host), None) => Some(host.to_str().ok()?),
        (None, None) => None,
        _ => return None,
    };
    match request.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => header,
    }
}

async fn whole_body(body: Incoming, deadline: Duration) -> Result<Body, Response> {
    if body.is_end_stream() {
        return Ok(Body::empty());
    }
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a request body is at most {MAX_BODY_BYTES} bytes"),
        )
    };
    if body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        return Err(too_large());
    }
    match tokio::time::timeout(deadline, Limited::new(body, MAX_BODY_BYTES).collect()).await {
        Ok(Ok(collected)) => Ok(Body::from(collected.to_bytes())),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(refuse(
            StatusCode::BAD_REQUEST,
            "the request body could not be read".into(),
        )),
        Err(_) => Err(refuse(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s",
                deadline.as_secs()
            ),
        )),
    }
}

/// A short plain answer that also closes the connection.
fn refuse(status: StatusCode, message: String) -> Response {
    let mut response = (status, message).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
