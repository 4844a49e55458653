//! An RTSP server on loopback serving a looping H.264 MPEG-TS file: the demo
//! camera, and the cameras of the tests and the bench.

use crate::{template, MediaError};
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::glib;
use gstreamer_rtsp_server::prelude::*;
use std::path::Path;
use std::thread::JoinHandle;

pub struct RtspServer {
    main_loop: glib::MainLoop,
    thread: Option<JoinHandle<()>>,
    pub url: String,
}

impl RtspServer {
    /// Blocks until the server stops (for the `camera` subcommand).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Basic-auth credentials a client must present.
pub struct ServerCredentials<'a> {
    pub user: &'a str,
    pub password: &'a str,
}

/// Serves `file` at rtsp://{address}:{port}{mount}, each client from the
/// start; with `credentials`, only to clients that present them.
pub fn serve_file(
    file: &Path,
    address: &str,
    port: u16,
    mount: &str,
    credentials: Option<ServerCredentials<'_>>,
) -> Result<RtspServer, MediaError> {
    crate::init()?;
    if !file.is_file() {
        return Err(MediaError::Server(format!(
            "{} is not a readable file",
            file.display()
        )));
    }
    let location = file.to_string_lossy();
    if location.contains('"') {
        return Err(MediaError::Server(
            "the file path must not contain a double quote".into(),
        ));
    }
    if !mount.starts_with('/') {
        return Err(MediaError::Server(format!(
            "mount `{mount}` must start with /"
        )));
    }
    let server = rtsp::RTSPServer::new();
    server.set_address(address);
    server.set_service(&port.to_string());
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&template::render(
        template::RTSP_SERVER,
        &[("location", &location)],
    ));
    // One media per client: a shared media that its last client leaves can
    // get stuck in gst-rtsp-server 1.22 ("can't prepare media") and refuse
    // every later client. Serving a file without re-encoding costs little.
    factory.set_shared(false);
    if let Some(creds) = credentials {
        const ROLE: &str = "viewer";
        let auth = rtsp::RTSPAuth::new();
        let token = rtsp::RTSPToken::builder()
            .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
            .build();
        auth.add_basic(
            &rtsp::RTSPAuth::make_basic(creds.user, creds.password),
            &token,
        );
        server.set_auth(Some(&auth));
        let permissions = gstreamer::Structure::builder(ROLE)
            .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
            .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
            .build();
        factory.add_role_from_structure(&permissions);
    }
    server
        .mount_points()
        .ok_or_else(|| MediaError::Server("no mount points".into()))?
        .add_factory(mount, factory);

    let context = glib::MainContext::new();
    let main_loop = glib::MainLoop::new(Some(&context), false);
    // Bind now, so that a busy port is an error here rather than silence.
    let source = context
        .with_thread_default(|| server.attach(Some(&context)))
        .map_err(|e| MediaError::Server(e.to_string()))?
        .map_err(|_| {
            MediaError::Server(format!("cannot listen on {address}:{port} (port in use?)"))
        })?;
    let loop_in_thread = main_loop.clone();
    let thread = std::thread::Builder::new()
        .name("rtsp-server".into())
        .spawn(move || {
            let _ = context.with_thread_default(|| loop_in_thread.run());
            source.remove();
            drop(server);
        })
        .map_err(|e| MediaError::Server(e.to_string()))?;
    let url = format!("rtsp://{address}:{port}{mount}");
    Ok(RtspServer {
        main_loop,
        thread: Some(thread),
        url,
    })
}
