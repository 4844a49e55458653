//! The read-only Modbus TCP server (`[modbus]`): the live counts as
//! registers for a building management system, mapped by
//! `disclosure::modbus` (documented in `docs/building.md`). tokio-modbus
//! frames and decodes the requests; this module answers reads (functions
//! 03 and 04) and refuses every other function, writes included, with
//! exception 01. Modbus TCP has no authentication: it is off unless
//! configured, and serves nothing a facilities dashboard would not show.
//!
//! Every client holds one of `modbus.max_connections` places (one more is
//! closed at once; no host holds more than half of them) and is
//! disconnected after `modbus.idle_secs` without an answered request (bytes
//! that do not make one, sent slowly, do not keep a place), or when a
//! response cannot be written for as long; a request that cannot be
//! decoded ends its own connection only.

use headcount_domain::analytics::OccupancyBoard;
use headcount_domain::clock::Clock;
use headcount_domain::config::ModbusConfig;
use headcount_domain::disclosure::live::LiveView;
use headcount_domain::disclosure::modbus::{self, ReadError};
use headcount_domain::health::HealthBoard;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_modbus::server::tcp::Server;
use tokio_modbus::{ExceptionCode, Request, Response};

/// Where the registers are read from.
pub struct Registers {
    pub view: LiveView,
    pub board: OccupancyBoard,
    pub health: HealthBoard,
    pub clock: Arc<dyn Clock>,
}

impl Registers {
    fn read(&self, address: u16, count: u16) -> Result<Vec<u16>, ExceptionCode> {
        let snapshot = self.view.snapshot(
            &self.board.snapshot(),
            &self.health.snapshot(),
            self.clock.now_ms(),
        );
        modbus::read(&snapshot, address, count).map_err(|e| match e {
            ReadError::IllegalAddress => ExceptionCode::IllegalDataAddress,
            ReadError::IllegalCount => ExceptionCode::IllegalDataValue,
        })
    }

    /// The map of the running config, one line per object.
    fn describe(&self) -> Vec<String> {
        modbus::describe(&self.view.snapshot(
            &self.board.snapshot(),
            &self.health.snapshot(),
            self.clock.now_ms(),
        ))
    }
}

/// One client's service: reads answered, everything else refused.
struct Session {
    registers: Arc<Registers>,
    client: SocketAddr,
}

impl tokio_modbus::server::Service for Session {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, request: Request<'static>) -> Self::Future {
        let answer = match request {
            Request::ReadInputRegisters(address, count) => self
                .registers
                .read(address, count)
                .map(Response::ReadInputRegisters),
            Request::ReadHoldingRegisters(address, count) => self
                .registers
                .read(address, count)
                .map(Response::ReadHoldingRegisters),
            other => {
                tracing::warn!(client = %self.client, function = %other.function_code(),
                    "Modbus request refused: the server is read-only");
                Err(ExceptionCode::IllegalFunction)
            }
        };
        std::future::ready(answer)
    }
}

/// A client's connection: its place among `max_connections`, and a
/// deadline that each whole answer moves on (written and flushed; not
/// each byte received or written: a client dribbling a request, or taking
/// its answers a byte at a time, would hold its place forever).
struct Connection {
    stream: TcpStream,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Bytes of an answer were written since the last flush.
    answering: bool,
    _place: OwnedSemaphorePermit,
    _host: HostShare,
}

/// The connections each host holds: no host may hold more than half the
/// places, so one building-network host cannot take them all.
#[derive(Clone, Default)]
struct Hosts(Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>);

/// One connection of a host; dropped, it gives its share back.
struct HostShare {
    hosts: Hosts,
    host: IpAddr,
}

impl Hosts {
    fn take(&self, host: IpAddr, most: usize) -> Option<HostShare> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(host).or_default();
        if *count >= most {
            return None;
        }
        *count += 1;
        Some(HostShare {
            hosts: self.clone(),
            host,
        })
    }
}

impl Drop for HostShare {
    fn drop(&mut self) {
        let mut held = self.hosts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.host) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.host);
            }
        }
    }
}

impl Connection {
    /// Pending: whether the deadline has passed, as an error.
    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        self.deadline.as_mut().poll(cx).map(|()| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "the Modbus client was idle too long",
            )
        })
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Pending => this.expired(cx).map(Err),
            ready => ready,
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Pending => this.expired(cx).map(Err),
            Poll::Ready(Ok(written)) => {
                this.answering |= written > 0;
                Poll::Ready(Ok(written))
            }
            failed => failed,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_flush(cx) {
            Poll::Pending => this.expired(cx).map(Err),
            Poll::Ready(Ok(())) => {
                // The framed writer flushes once a whole answer is written.
                if std::mem::take(&mut this.answering) {
                    let next = tokio::time::Instant::now() + this.idle;
                    this.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            failed => failed,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Binds `config.bind` and serves until aborted.
pub async fn spawn(config: &ModbusConfig, registers: Registers) -> anyhow::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|e| anyhow::anyhow!("modbus.bind {}: {e}", config.bind))?;
    for line in registers.describe() {
        tracing::info!(map = %line, "Modbus register");
    }
    tracing::info!(bind = %config.bind, "serving the live counts over Modbus TCP (read-only)");
    let registers = Arc::new(registers);
    let places = Arc::new(Semaphore::new(config.max_connections));
    let hosts = Hosts::default();
    let per_host = (config.max_connections / 2).max(1);
    let idle = Duration::from_secs(config.idle_secs);
    let server = Server::new(listener);
    Ok(tokio::spawn(async move {
        let on_connected = |stream: TcpStream, client: SocketAddr| {
            let share = hosts.take(client.ip(), per_host);
            let place = places.clone().try_acquire_owned();
            let registers = registers.clone();
            async move {
                let Some(share) = share else {
                    tracing::warn!(%client, "Modbus client refused: its host holds half the places");
                    return Ok(None);
                };
                let Ok(place) = place else {
                    tracing::warn!(%client, "Modbus client refused: every place is taken");
                    return Ok(None);
                };
                let connection = Connection {
                    stream,
                    idle,
                    deadline: Box::pin(tokio::time::sleep(idle)),
                    answering: false,
                    _place: place,
                    _host: share,
                };
                Ok(Some((Session { registers, client }, connection)))
            }
        };
        let on_error = |e: io::Error| tracing::debug!(error = %e, "a Modbus connection ended");
        loop {
            // Only accept() fails here (out of file descriptors, say): the
            // clients served so far are dropped, and serving starts again.
            if let Err(e) = server.serve(&on_connected, on_error).await {
                tracing::error!(error = %e, "the Modbus server failed; serving again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }))
}
