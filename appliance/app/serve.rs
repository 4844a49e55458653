//! Serving the API: plain HTTP on loopback, TLS (rustls on ring) anywhere
//! else, with a per-device self-signed certificate made at first start
//! unless the admin supplies one. Tells systemd when it is ready, keeps its
//! watchdog fed, and says when it stops.

use anyhow::Context;
use axum::Router;
use headcount_core::config::{Config, Tls};
use headcount_core::security::{to_hex, write_private_file};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto::Builder;
use sd_notify::NotifyState;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const TLS_DIR: &str = "tls";
/// A client must send its request head within this time (against slow-header
/// "slowloris" clients holding connections open).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate and key to serve, making the device's own at first start.
fn certificate(config: &Config) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    match &config.api.tls {
        Tls::Off => Ok(None),
        Tls::Supplied { cert, key } => Ok(Some((cert.clone(), key.clone()))),
        Tls::SelfSigned => {
            let dir = config.state_dir.join(TLS_DIR);
            let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            if !(cert.exists() && key.exists()) {
                make_self_signed(&cert, &key, config.api.bind)?;
            }
            Ok(Some((cert, key)))
        }
    }
}

/// A new key pair and a self-signed certificate for this device's names.
fn make_self_signed(cert: &Path, key: &Path, bind: SocketAddr) -> anyhow::Result<()> {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !hostname.is_empty() {
        names.push(hostname.clone());
        names.push(format!("{hostname}.local"));
    }
    if !bind.ip().is_unspecified() {
        names.push(bind.ip().to_string());
    }
    names.dedup();
    let generated =
        rcgen::generate_simple_self_signed(names).context("cannot make the TLS certificate")?;
    // Key first, certificate last, each atomically: a crash in between
    // leaves no certificate, so the next start makes a new pair.
    write_private_file(key, generated.signing_key.serialize_pem().as_bytes())?;
    write_private_file(cert, generated.cert.pem().as_bytes())?;
    tracing::info!(certificate = %cert.display(), "made this device's TLS key and self-signed certificate");
    Ok(())
}

/// SHA-256 of the certificate's first DER block, for clients to pin.
fn fingerprint(cert_pem: &Path) -> anyhow::Result<String> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(cert_pem)
        .map_err(|e| anyhow::anyhow!("{} holds no certificate: {e}", cert_pem.display()))?;
    Ok(to_hex(
        ring::digest::digest(&ring::digest::SHA256, &der).as_ref(),
    ))
}

/// Serves `app` until SIGTERM or Ctrl-C, on TLS where the config asks for it.
pub async fn serve(config: &Config, app: Router) -> anyhow::Result<()> {
    let bind = config.api.bind;
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    tokio::spawn(stop_on_signal(handle.clone()));
    match certificate(config)? {
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(
                tls_config(&cert, &key).with_context(|| {
                    format!(
                        "cannot use the TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?,
            ));
            let listener = listen(bind)?;
            tracing::info!(address = %bind, sha256 = %fingerprint(&cert)?, "serving the API over TLS");
            ready(config);
            let mut server = axum_server::from_tcp_rustls(listener, tls).handle(handle);
            limit_protocol(server.http_builder());
            server.serve(service).await.context("API server failed")
        }
        None => {
            let listener = listen(bind)?;
            tracing::info!(address = %bind, "serving the API over plain HTTP on loopback");
            ready(config);
            let mut server = axum_server::from_tcp(listener).handle(handle);
            limit_protocol(server.http_builder());
            server.serve(service).await.context("API server failed")
        }
    }
}

/// HTTP/1.1 only (HTTP/2 would need its own idle limits, and the API gains
/// nothing from it), with a deadline for the request head.
fn limit_protocol(builder: &mut Builder<TokioExecutor>) {
    let http1 = std::mem::replace(builder, Builder::new(TokioExecutor::new())).http1_only();
    *builder = http1;
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
}

/// rustls (ring) with the certificate chain and key, offering HTTP/1.1 only.
fn tls_config(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn listen(bind: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener =
        std::net::TcpListener::bind(bind).with_context(|| format!("cannot listen on {bind}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Tells systemd the service is up, and keeps its watchdog fed for as long
/// as this runtime runs.
fn ready(config: &Config) {
    tracing::info!(cameras = config.cameras.len(), "headcount is running");
    let _ = sd_notify::notify(&[NotifyState::Ready]);
    if let Some(timeout) = sd_notify::watchdog_enabled().filter(|t| !t.is_zero()) {
        let every = timeout / 3;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let _ = sd_notify::notify(&[NotifyState::Watchdog]);
            }
        });
    }
}

async fn stop_on_signal(handle: axum_server::Handle) {
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
    handle.graceful_shutdown(Some(Duration::from_secs(5)));
}
