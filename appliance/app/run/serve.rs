//! Serving the API: plain HTTP on loopback, TLS (rustls on ring) anywhere
//! else (`certificate`). Our own accept loop holds every connection to the
//! caps of `[api.connections]` (`security::admission`: a pool in total and
//! per client, a reserve for the admin's addresses) and refuses the rest at
//! once, and gives each connection a deadline at every phase: its first
//! byte, the TLS handshake, each request head (also the idle wait between
//! requests), each body (`requests`) and each answer sent (`io`). HTTP/1.1
//! only. Tells systemd when it is ready, keeps its watchdog fed, and says
//! when it stops.

mod certificate;
mod io;
mod requests;

use super::supervisor::Supervisor;
use anyhow::Context;
use axum::Router;
use certificate::Certificate;
use headcount_domain::config::Config;
use headcount_domain::security::admission::{Admission, Deadlines, Permit, Refused};
use headcount_domain::security::hosts::AllowedHosts;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use requests::{Addresses, Front};
use sd_notify::NotifyState;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// What a plain-HTTP client beyond the caps is told before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Content-Length: 28\r\nRetry-After: 5\r\nConnection: close\r\n\r\ntoo many connections; retry\n";
/// Connections the kernel queues before the accept loop takes them: enough
/// for a burst, since the loop refuses what is beyond the caps at once.
const BACKLOG: u32 = 1024;
/// A request head, cookies included, is at most this (431 beyond).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long open connections may finish their answers at a stop.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Refusals and accept errors are logged at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Raises this process's soft limit on open files to what the connection
/// caps, SQLite and the cameras need, or says why it cannot: caps the hard
/// limit (`LimitNOFILE=` in the unit) cannot hold are refused.
pub fn reserve_descriptors(config: &Config) -> anyhow::Result<()> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let policy = &config.api.connections;
    let needed = policy.descriptors_needed(config.cameras.len());
    let limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum.filter(|&hard| hard < needed) {
        anyhow::bail!(
            "api.connections allows {} connections at once ({} plus {} for the admin), which with \
             SQLite and {} camera(s) need {needed} file descriptors; the hard limit is {hard}: \
             lower api.connections.max or raise LimitNOFILE= in the unit",
            policy.max + policy.admin_reserve,
            policy.max,
            policy.admin_reserve,
            config.cameras.len()
        );
    }
    if limit.current.is_some_and(|soft| soft < needed) {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(needed),
                maximum: limit.maximum,
            },
        )
        .with_context(|| format!("cannot raise the limit on open files to {needed}"))?;
    }
    tracing::debug!(needed, "file descriptors reserved");
    Ok(())
}

/// Serves `app` until SIGTERM or Ctrl-C, on TLS where the config asks for it.
/// Serves `app` until SIGTERM or Ctrl-C; systemd's watchdog is fed while
/// every stage under `supervisor` beats.
pub async fn serve(
    config: &Config,
    port: tokio::net::TcpSocket,
    app: Router,
    supervisor: Supervisor,
) -> anyhow::Result<()> {
    let api = &config.api;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok();
    let hosts = AllowedHosts::new(api.bind, &api.hosts, hostname.as_deref());
    let certificate = Certificate::for_config(config, &hosts)?;
    let tls = match &certificate {
        Some(certificate) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(TlsAcceptor::from(certificate.server_config()?))
        }
        None => None,
    };
    let listener = port
        .listen(BACKLOG)
        .with_context(|| format!("api.bind: cannot listen on {}", api.bind))?;
    match &certificate {
        Some(c) => {
            tracing::info!(address = %api.bind, sha256 = %c.fingerprint()?, "serving the API over TLS")
        }
        None => tracing::info!(address = %api.bind, "serving the API over plain HTTP on loopback"),
    }
    let policy = &api.connections;
    tracing::info!(
        max = policy.max,
        per_client = policy.per_client,
        admin_reserve = policy.admin_reserve,
        admin_addresses = %policy.admin_addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
        "connection caps"
    );
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(policy.deadlines.header)
        .max_buf_size(MAX_HEAD_BYTES);
    let shared = Arc::new(Shared {
        front: Front {
            router: app,
            hosts,
            body_deadline: policy.deadlines.body,
            tls: tls.is_some(),
        },
        deadlines: policy.deadlines,
        http,
    });
    let admission = Admission::new(policy.clone());
    let (stop_sender, stop) = watch::channel(false);
    tokio::spawn(stop_on_signal(stop_sender));
    ready(config, supervisor);
    accept(listener, admission.clone(), shared, tls, certificate, stop).await;
    let grace = Instant::now() + STOP_GRACE;
    while admission.open() > 0 && Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// What every connection shares.
struct Shared {
    front: Front,
    deadlines: Deadlines,
    http: http1::Builder,
}

/// The API's port, bound before the appliance writes anything or starts a
/// camera, so that a port another program holds is a clear error at once.
/// `serve` listens on it.
pub fn claim_port(bind: SocketAddr) -> anyhow::Result<tokio::net::TcpSocket> {
    let socket = if bind.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    };
    let bound = socket.and_then(|s| {
        s.set_reuseaddr(true)?;
        s.bind(bind)?;
        Ok(s)
    });
    match bound {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
            "api.bind: another program listens on {bind} (`ss -ltnp` names it); \
             stop it or choose another port in the config"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            anyhow::bail!("api.bind: {} is not an address of this machine", bind.ip())
        }
        other => other.with_context(|| format!("api.bind: cannot listen on {bind}")),
    }
}

/// Takes connections until told to stop: each one within the caps gets a
/// task, the rest are closed at once (plain HTTP: after a short 503).
async fn accept(
    listener: TcpListener,
    admission: Admission,
    shared: Arc<Shared>,
    mut tls: Option<TlsAcceptor>,
    certificate: Option<Certificate>,
    mut stop: watch::Receiver<bool>,
) {
    let mut refusals = Refusals::default();
    let mut accept_errors = Report::default();
    let renews = certificate.as_ref().is_some_and(Certificate::renews);
    let mut renewal = tokio::time::interval_at(
        tokio::time::Instant::now() + certificate::RENEWAL_CHECK,
        certificate::RENEWAL_CHECK,
    );
    loop {
        let accepted = tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            _ = renewal.tick(), if renews => {
                if let Some(acceptor) = certificate.as_ref().and_then(renew) {
                    tls = Some(acceptor);
                }
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors or similar: back off rather than spin.
                if accept_errors.due() {
                    tracing::warn!(error = %e, "cannot accept connections");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match admission.admit(peer.ip()) {
            Ok(permit) => {
                tokio::spawn(connection(
                    stream,
                    peer,
                    permit,
                    shared.clone(),
                    tls.clone(),
                    stop.clone(),
                ));
            }
            Err(refused) => {
                if tls.is_none() {
                    let _ = stream.try_write(BUSY);
                }
                refusals.count(refused, peer);
            }
        }
    }
}

/// The new acceptor when this device's certificate was renewed.
fn renew(certificate: &Certificate) -> Option<TlsAcceptor> {
    let renewed = certificate
        .renew_if_due(std::time::SystemTime::now())
        .and_then(|renewed| {
            renewed
                .then(|| Ok((certificate.server_config()?, certificate.fingerprint()?)))
                .transpose()
        });
    match renewed {
        Ok(Some((config, sha256))) => {
            tracing::warn!(%sha256, "serving the renewed certificate; clients that pinned the old one's fingerprint must pin this one");
            Some(TlsAcceptor::from(config))
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "cannot renew the TLS certificate; the next check retries"
            );
            None
        }
    }
}

/// One connection, phase by phase, each under its deadline.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    permit: Permit,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let _place = permit;
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let deadlines = shared.deadlines;
    // Nothing is read until the client has said something.
    let mut first = [0u8; 1];
    let said = until_stopped(
        &mut stop,
        tokio::time::timeout(deadlines.first_byte, stream.peek(&mut first)),
    );
    if !matches!(said.await, Some(Ok(Ok(1..)))) {
        return;
    }
    let io = io::SendDeadline::new(stream, deadlines.send);
    let addresses = Addresses {
        peer,
        local: local.ip(),
    };
    match tls {
        None => http(io, addresses, &shared, &mut stop).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(deadlines.tls_handshake, acceptor.accept(io));
            match until_stopped(&mut stop, handshake).await {
                Some(Ok(Ok(tls))) => http(tls, addresses, &shared, &mut stop).await,
                Some(Ok(Err(e))) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Some(Err(_)) => tracing::debug!(%peer, "TLS handshake too slow"),
                None => {}
            }
        }
    }
}

/// Requests over one connection until it ends, or a stop lets its current
/// answer finish.
async fn http<I>(
    io: I,
    addresses: Addresses,
    shared: &Arc<Shared>,
    stop: &mut watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let shared = shared.clone();
        hyper::service::service_fn(move |request| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(shared.front.answer(request, addresses).await) }
        })
    };
    let connection = shared.http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = stopped(stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = served {
        tracing::debug!(peer = %addresses.peer, error = %e, "connection ended");
    }
}

/// Resolves once a stop is asked for (never if no one can ask any more).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `work`'s output, or None when a stop comes first.
async fn until_stopped<F: Future>(stop: &mut watch::Receiver<bool>, work: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        () = stopped(stop) => None,
        output = work => Some(output),
    }
}

/// Says when a recurring problem is worth a log line again.
#[derive(Default)]
struct Report {
    last: Option<Instant>,
}

impl Report {
    fn due(&mut self) -> bool {
        let due = self.last.is_none_or(|last| last.elapsed() >= REPORT_EVERY);
        if due {
            self.last = Some(Instant::now());
        }
        due
    }
}

/// Connections refused since the last report: the first at once, then at
/// most one line a minute however many there are.
#[derive(Default)]
struct Refusals {
    full: u64,
    client_full: u64,
    report: Report,
}

impl Refusals {
    fn count(&mut self, refused: Refused, peer: SocketAddr) {
        match refused {
            Refused::Full => self.full += 1,
            Refused::ClientFull => self.client_full += 1,
        }
        if self.report.due() {
            tracing::warn!(
                pool_full = self.full,
                client_full = self.client_full,
                last_client = %peer.ip(),
                "refused connections beyond the caps (api.connections)"
            );
            (self.full, self.client_full) = (0, 0);
        }
    }
}

/// Tells systemd the service is up, and keeps its watchdog fed while every
/// stage beats: a silent stage lets systemd restart the service.
fn ready(config: &Config, supervisor: Supervisor) {
    tracing::info!(cameras = config.cameras.len(), "headcount is running");
    let _ = sd_notify::notify(&[NotifyState::Ready]);
    if let Some(timeout) = sd_notify::watchdog_enabled().filter(|t| !t.is_zero()) {
        let every = timeout / 3;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let silent = supervisor.silent();
                if silent.is_empty() {
                    let _ = sd_notify::notify(&[NotifyState::Watchdog]);
                } else {
                    tracing::error!(stages = ?silent, "stages silent for too long; the watchdog is no longer fed");
                }
            }
        });
    }
}

async fn stop_on_signal(stop: watch::Sender<bool>) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; stop with Ctrl-C");
            None
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
    let _ = stop.send(true);
}
