//! The anomaly webhook: each stored anomaly change, minimised by the
//! disclosure policy (`disclosure::push::PushedNotice`: times to the
//! minute, no acknowledger, no explanation, counts below k banded, wrong
//! way as counts per bucket), is POSTed as JSON to `[anomalies.webhook]`,
//! one at a time and in order.
//!
//! - The body is signed (`X-Headcount-Signature: sha256=HEX`, HMAC-SHA256
//!   of the exact bytes) when a secret is configured, so that a receiver
//!   can tell the appliance's notices from anyone else's POSTs.
//! - `X-Headcount-Delivery` names the notice (`opened-42`), and stays the
//!   same across retries, so that a receiver can drop duplicates: a retry
//!   after a lost response delivers the same notice twice.
//! - Failures (connect, TLS, timeout, non-2xx) are retried with exponential
//!   backoff; a notice that still fails is logged and dropped, since the
//!   anomaly itself stays stored and served by the API. Later notices wait
//!   meanwhile (bounded by the broadcast channel, whose overflow is logged).
//!
//! The client is hyper's HTTP/1 connection API over rustls (ring), one
//! connection per attempt: notices are rare, and a fresh connection needs
//! no pool, no idle timeouts and no reconnect logic.

use anyhow::Context;
use bytes::Bytes;
use headcount_domain::config::anomaly::WebhookConfig;
use headcount_domain::disclosure::push::PushedNotice;
use headcount_domain::encoding::to_hex;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper::Request;
use ring::hmac;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

const AGENT: &str = concat!("headcount/", env!("CARGO_PKG_VERSION"));

/// The first retry waits this long; each later one twice as long as the last.
const BASE_BACKOFF: Duration = Duration::from_secs(1);

/// No wait between attempts is longer, however many retries are configured.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Starts delivering `notices` to the webhook; must be called inside a
/// tokio runtime. Fails at once when TLS cannot be set up (an unreadable
/// `ca_file`, no usable CA), rather than failing every delivery later.
///
/// The task ends when every sender of `notices` is gone, after finishing
/// (or giving up on) the notice in hand; abort it to stop sooner.
pub fn spawn_webhook(
    config: WebhookConfig,
    notices: broadcast::Receiver<PushedNotice>,
) -> anyhow::Result<JoinHandle<()>> {
    let delivery = Delivery::new(&config, BASE_BACKOFF)?;
    tracing::info!(url = %delivery.url, "delivering anomaly notices to the webhook");
    Ok(tokio::spawn(delivery.run(notices)))
}

/// Everything one delivery needs, resolved once at start.
struct Delivery {
    /// As written in the config, for messages (it holds no secret: the
    /// signing key is separate).
    url: String,
    /// Host name or IP literal, without brackets: what is resolved and
    /// what the server certificate must name.
    host: String,
    port: u16,
    /// The `Host` header: brackets around an IPv6 literal, the port when
    /// not the scheme's default.
    authority: String,
    /// Path and query, never empty.
    path: String,
    tls: Option<TlsConnector>,
    key: Option<hmac::Key>,
    retries: u32,
    timeout: Duration,
    base_backoff: Duration,
}

impl Delivery {
    fn new(config: &WebhookConfig, base_backoff: Duration) -> anyhow::Result<Delivery> {
        let tls = if config.tls {
            Some(TlsConnector::from(Arc::new(client_tls(
                config.ca_file.as_deref(),
            )?)))
        } else {
            None
        };
        Ok(Delivery::with_parts(
            config,
            tls,
            config.secret.as_ref().map(|s| s.expose()),
            base_backoff,
        ))
    }

    /// Split from `new` so that tests can use a signing secret (the config's
    /// `Secret` is only ever made by the config loader).
    fn with_parts(
        config: &WebhookConfig,
        tls: Option<TlsConnector>,
        secret: Option<&str>,
        base_backoff: Duration,
    ) -> Delivery {
        let host = config
            .host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&config.host)
            .to_string();
        let bracketed = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let default_port = if config.tls { 443 } else { 80 };
        let authority = if config.port == default_port {
            bracketed
        } else {
            format!("{bracketed}:{}", config.port)
        };
        let path = if config.path.is_empty() {
            "/".to_string()
        } else {
            config.path.clone()
        };
        Delivery {
            url: config.url.clone(),
            host,
            port: config.port,
            authority,
            path,
            tls,
            key: secret.map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.as_bytes())),
            retries: config.retries,
            timeout: Duration::from_millis(config.timeout_ms),
            base_backoff,
        }
    }

    /// Delivers notices in order until the channel closes.
    async fn run(self, mut notices: broadcast::Receiver<PushedNotice>) {
        loop {
            match notices.recv().await {
                Ok(notice) => {
                    self.deliver(&notice).await;
                }
                Err(RecvError::Lagged(lost)) => {
                    tracing::warn!(
                        url = %self.url,
                        lost,
                        "the anomaly webhook fell behind; {lost} notices were dropped undelivered"
                    );
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// One notice, with retries; true once a 2xx came back.
    async fn deliver(&self, notice: &PushedNotice) -> bool {
        let body = match serde_json::to_vec(notice) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an anomaly notice");
                return false;
            }
        };
        let id = notice.delivery_id();
        let signature = self
            .key
            .as_ref()
            .map(|key| format!("sha256={}", to_hex(hmac::sign(key, &body).as_ref())));
        for attempt in 0..=self.retries {
            let outcome =
                tokio::time::timeout(self.timeout, self.attempt(&id, signature.as_deref(), &body))
                    .await;
            let failure = match outcome {
                Ok(Ok(status)) if status.is_success() => {
                    tracing::debug!(url = %self.url, delivery = %id, "anomaly notice delivered");
                    return true;
                }
                Ok(Ok(status)) => format!("the webhook answered {status}"),
                Ok(Err(e)) => format!("{e:#}"),
                Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
            };
            if attempt == self.retries {
                tracing::error!(
                    url = %self.url,
                    delivery = %id,
                    attempts = attempt + 1,
                    error = %failure,
                    "giving up on an anomaly notice"
                );
                break;
            }
            let wait = backoff(self.base_backoff, attempt);
            tracing::warn!(
                url = %self.url,
                delivery = %id,
                error = %failure,
                "anomaly webhook failed; retrying in {} ms",
                wait.as_millis()
            );
            tokio::time::sleep(wait).await;
        }
        false
    }

    /// One POST on a fresh connection; the response's status.
    async fn attempt(
        &self,
        id: &str,
        signature: Option<&str>,
        body: &Bytes,
    ) -> anyhow::Result<hyper::StatusCode> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("cannot connect to {}:{}", self.host, self.port))?;
        // Notices are small and each waits for its answer: send at once.
        let _ = tcp.set_nodelay(true);
        let mut request = Request::post(self.path.as_str())
            .header(HOST, &self.authority)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, AGENT)
            .header("x-headcount-delivery", id);
        if let Some(signature) = signature {
            request = request.header("x-headcount-signature", signature);
        }
        let request = request
            .body(Full::new(body.clone()))
            .context("cannot build the webhook request")?;
        match &self.tls {
            Some(connector) => {
                let name = ServerName::try_from(self.host.clone())
                    .with_context(|| format!("{} is not a valid TLS server name", self.host))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .context("TLS handshake failed")?;
                send(hyper_util::rt::TokioIo::new(tls), request).await
            }
            None => send(hyper_util::rt::TokioIo::new(tcp), request).await,
        }
    }
}

/// Sends `request` over `io` and waits for the response head. The
/// connection is driven here rather than in a spawned task, so that a
/// timeout (which drops this future) also closes it.
async fn send<T>(io: T, request: Request<Full<Bytes>>) -> anyhow::Result<hyper::StatusCode>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .context("HTTP handshake failed")?;
    let response = sender.send_request(request);
    tokio::pin!(response);
    tokio::pin!(connection);
    let response = tokio::select! {
        response = &mut response => response,
        closed = &mut connection => {
            closed.context("the webhook connection failed")?;
            // Closed cleanly: the response, if any, was handed over first.
            response.await
        }
    };
    Ok(response.context("no response from the webhook")?.status())
}

/// The wait before retry `attempt + 1`: base, 2 base, 4 base ... capped.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// rustls on ring (never the process default, which another part of the
/// appliance may set), HTTP/1.1 only, trusting `ca_file` or else the
/// system's CAs.
fn client_tls(ca_file: Option<&std::path::Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("anomalies.webhook.ca_file {}: {e}", path.display())
            })?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    anyhow::anyhow!("anomalies.webhook.ca_file {}: {e}", path.display())
                })?;
                roots.add(cert).map_err(|e| {
                    anyhow::anyhow!("anomalies.webhook.ca_file {}: {e}", path.display())
                })?;
            }
            if roots.is_empty() {
                anyhow::bail!(
                    "anomalies.webhook.ca_file {} holds no PEM certificate",
                    path.display()
                );
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::warn!(error = %e, "cannot read some of the system's CA certificates");
            }
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                anyhow::bail!(
                    "no system CA certificates found for the anomaly webhook; \
                     set anomalies.webhook.ca_file"
                );
            }
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("cannot set up TLS for the anomaly webhook")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use headcount_domain::anomaly::{Anomaly, Kind, Notice, Severity, Transition};
    use headcount_domain::disclosure::push::{PushFeed, WrongWayPush};
    use std::sync::Mutex;

    const SECRET: &str = "correct horse battery staple";

    /// What the test server saw, and how many requests it still fails.
    #[derive(Default)]
    struct Seen {
        requests: Vec<(HeaderMap, Bytes)>,
        fail_first: usize,
    }

    type Shared = Arc<Mutex<Seen>>;

    async fn hook(State(seen): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let mut seen = seen.lock().unwrap();
        seen.requests.push((headers, body));
        if seen.requests.len() <= seen.fail_first {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::NO_CONTENT
        }
    }

    /// A real HTTP server on loopback that fails the first `fail_first`
    /// requests with 503.
    async fn server(fail_first: usize) -> (u16, Shared) {
        let seen: Shared = Arc::new(Mutex::new(Seen {
            requests: Vec::new(),
            fail_first,
        }));
        let app = axum::Router::new()
            .route("/hooks/anomaly", axum::routing::post(hook))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (port, seen)
    }

    fn config(port: u16, retries: u32) -> WebhookConfig {
        WebhookConfig {
            url: format!("http://127.0.0.1:{port}/hooks/anomaly?site=hq"),
            host: "127.0.0.1".into(),
            port,
            path: "/hooks/anomaly?site=hq".into(),
            tls: false,
            ca_file: None,
            secret: None,
            retries,
            timeout_ms: 2_000,
        }
    }

    fn delivery(config: &WebhookConfig, secret: Option<&str>) -> Delivery {
        Delivery::with_parts(config, None, secret, Duration::from_millis(5))
    }

    fn notice(id: i64, transition: Transition) -> PushedNotice {
        let stored = Notice {
            site: "hq".into(),
            transition,
            anomaly: Anomaly {
                id,
                kind: Kind::OverCapacity,
                subject_type: "space".into(),
                subject: "lobby".into(),
                started_ms: 1_700_000_000_000,
                ended_ms: None,
                severity: Severity::Warning,
                value: 42.0,
                threshold: 40.0,
                explanation: "42 people, capacity 40".into(),
                acknowledged_ms: None,
                acknowledged_by: None,
            },
        };
        let mut feed = PushFeed::new("hq", 5, WrongWayPush::Each);
        feed.accept(&stored).unwrap()
    }

    fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
        headers.get(name).unwrap().to_str().unwrap()
    }

    #[tokio::test]
    async fn delivers_a_signed_notice_after_retries() {
        let (port, seen) = server(2).await;
        let delivery = delivery(&config(port, 3), Some(SECRET));
        let sent = notice(7, Transition::Opened);
        assert!(delivery.deliver(&sent).await);

        let seen = seen.lock().unwrap();
        assert_eq!(seen.requests.len(), 3, "two 503s, then success");
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
        for (headers, body) in &seen.requests {
            assert_eq!(header(headers, "content-type"), "application/json");
            assert_eq!(header(headers, "user-agent"), AGENT);
            assert_eq!(header(headers, "x-headcount-delivery"), "opened-7");
            assert_eq!(header(headers, "host"), format!("127.0.0.1:{port}"));
            let hex = header(headers, "x-headcount-signature")
                .strip_prefix("sha256=")
                .unwrap();
            let tag: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            hmac::verify(&key, body, &tag).unwrap();
            let received: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(received, serde_json::to_value(&sent).unwrap());
        }
        // A different key does not verify: the signature covers the secret.
        let (headers, body) = &seen.requests[0];
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"another secret");
        let hex = &header(headers, "x-headcount-signature")[7..];
        let tag: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert!(hmac::verify(&other, body, &tag).is_err());
    }

    #[tokio::test]
    async fn unsigned_without_a_secret() {
        let (port, seen) = server(0).await;
        assert!(
            delivery(&config(port, 0), None)
                .deliver(&notice(1, Transition::Closed))
                .await
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.requests.len(), 1);
        assert!(seen.requests[0].0.get("x-headcount-signature").is_none());
        assert_eq!(
            header(&seen.requests[0].0, "x-headcount-delivery"),
            "closed-1"
        );
    }

    #[tokio::test]
    async fn gives_up_after_retries_plus_one_attempts() {
        let (port, seen) = server(usize::MAX).await;
        let delivery = delivery(&config(port, 2), Some(SECRET));
        assert!(!delivery.deliver(&notice(3, Transition::Opened)).await);
        assert_eq!(seen.lock().unwrap().requests.len(), 3);
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_retried_then_dropped() {
        // Bind, then free the port: nothing listens there.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let delivery = delivery(&config(port, 1), None);
        assert!(!delivery.deliver(&notice(3, Transition::Opened)).await);
    }

    #[tokio::test]
    async fn a_silent_endpoint_times_out() {
        // Accepts connections but never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let mut config = config(port, 1);
        config.timeout_ms = 100;
        let started = std::time::Instant::now();
        assert!(
            !delivery(&config, None)
                .deliver(&notice(3, Transition::Opened))
                .await
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        held.abort();
    }

    #[tokio::test]
    async fn notices_are_delivered_in_order() {
        // The first notice fails twice; the second must still come after it.
        let (port, seen) = server(2).await;
        let (sender, receiver) = broadcast::channel(16);
        let task = tokio::spawn(delivery(&config(port, 3), Some(SECRET)).run(receiver));
        sender.send(notice(1, Transition::Opened)).unwrap();
        sender.send(notice(1, Transition::Acknowledged)).unwrap();
        sender.send(notice(2, Transition::Opened)).unwrap();
        drop(sender);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();

        let seen = seen.lock().unwrap();
        let order: Vec<&str> = seen
            .requests
            .iter()
            .map(|(h, _)| header(h, "x-headcount-delivery"))
            .collect();
        assert_eq!(
            order,
            [
                "opened-1",
                "opened-1",
                "opened-1",
                "acknowledged-1",
                "opened-2"
            ]
        );
    }

    #[tokio::test]
    async fn goes_on_after_falling_behind() {
        let (port, seen) = server(0).await;
        let (sender, receiver) = broadcast::channel(1);
        // Three notices into a channel of one before delivery starts: the
        // first two are lost (and logged), the last still goes out.
        for id in 1..=3 {
            sender.send(notice(id, Transition::Opened)).unwrap();
        }
        drop(sender);
        let task = tokio::spawn(delivery(&config(port, 0), None).run(receiver));
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.requests.len(), 1);
        assert_eq!(
            header(&seen.requests[0].0, "x-headcount-delivery"),
            "opened-3"
        );
    }

    #[tokio::test]
    async fn an_unreadable_ca_file_fails_at_start() {
        let mut config = config(443, 0);
        config.tls = true;
        config.ca_file = Some("/nonexistent/webhook-ca.pem".into());
        let (_sender, receiver) = broadcast::channel(1);
        let error = spawn_webhook(config, receiver).unwrap_err().to_string();
        assert!(error.contains("anomalies.webhook.ca_file"), "{error}");
        assert!(error.contains("/nonexistent/webhook-ca.pem"), "{error}");
    }

    #[tokio::test]
    async fn delivers_over_tls_trusting_the_ca_file() {
        use rustls::pki_types::PrivateKeyDer;
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, generated.cert.pem()).unwrap();

        let key = PrivateKeyDer::from_pem_slice(generated.signing_key.serialize_pem().as_bytes())
            .unwrap();
        let server_tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![generated.cert.der().clone()], key)
        .unwrap();
        let seen: Shared = Arc::default();
        let app = axum::Router::new()
            .route("/hooks/anomaly", axum::routing::post(hook))
            .with_state(seen.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(server_tls));
        tokio::spawn(async move {
            axum_server::from_tcp_rustls(listener, tls)
                .serve(app.into_make_service())
                .await
                .unwrap()
        });

        let config = WebhookConfig {
            url: format!("https://localhost:{port}/hooks/anomaly"),
            host: "localhost".into(),
            port,
            path: "/hooks/anomaly".into(),
            tls: true,
            ca_file: Some(ca),
            secret: None,
            retries: 0,
            timeout_ms: 5_000,
        };
        let delivery = Delivery::new(&config, Duration::from_millis(5)).unwrap();
        assert!(delivery.deliver(&notice(9, Transition::Opened)).await);
        assert_eq!(seen.lock().unwrap().requests.len(), 1);

        // The same server is refused when its certificate is not trusted.
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(config.ca_file.as_ref().unwrap(), other.cert.pem()).unwrap();
        let delivery = Delivery::new(&config, Duration::from_millis(5)).unwrap();
        assert!(!delivery.deliver(&notice(9, Transition::Closed)).await);
        assert_eq!(seen.lock().unwrap().requests.len(), 1);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(1);
        let waits: Vec<u64> = (0..8).map(|a| backoff(base, a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }

    #[test]
    fn host_header_and_path() {
        let mut config = config(80, 0);
        config.host = "[::1]".into();
        config.path = String::new();
        let d = delivery(&config, None);
        assert_eq!(d.host, "::1");
        assert_eq!(d.authority, "[::1]");
        assert_eq!(d.path, "/");
        config.port = 8443;
        config.tls = true;
        config.host = "hooks.example.com".into();
        assert_eq!(delivery(&config, None).authority, "hooks.example.com:8443");
    }
}
