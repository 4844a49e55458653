//! Helpers shared by every pipeline built from a template: parsing, named
//! elements, and the first error a pipeline reported.

use crate::MediaError;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app::AppSink;

/// Parses a pipeline description; `kind` names it in errors.
pub(crate) fn build(kind: &'static str, text: &str) -> Result<gst::Pipeline, MediaError> {
    let build_error = |message: String| MediaError::Build { kind, message };
    gst::parse::launch(text)
        .map_err(|e| build_error(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| build_error("not a pipeline".into()))
}

/// The element called `name` in a pipeline of the given `kind`.
pub(crate) fn element(
    pipeline: &gst::Pipeline,
    kind: &'static str,
    name: &str,
) -> Result<gst::Element, MediaError> {
    pipeline.by_name(name).ok_or_else(|| MediaError::Build {
        kind,
        message: format!("template lacks `{name}`"),
    })
}

/// The appsink called `name` in a pipeline of the given `kind`.
pub(crate) fn app_sink(
    pipeline: &gst::Pipeline,
    kind: &'static str,
    name: &str,
) -> Result<AppSink, MediaError> {
    element(pipeline, kind, name)?
        .downcast::<AppSink>()
        .map_err(|_| MediaError::Build {
            kind,
            message: format!("`{name}` is not an appsink"),
        })
}

/// GStreamer's short message for the first error on the pipeline's bus,
/// waiting up to `timeout` for one (zero: only what is already there).
pub(crate) fn first_error(pipeline: &gst::Pipeline, timeout: gst::ClockTime) -> Option<String> {
    let bus = pipeline.bus()?;
    let errors = [gst::MessageType::Error];
    // gstreamer-rs's timed_pop_filtered gives up after the first other
    // message once its budget is spent, so a zero budget could miss an
    // error queued behind a state change: pop_filtered scans them all.
    let msg = if timeout.is_zero() {
        bus.pop_filtered(&errors)
    } else {
        bus.timed_pop_filtered(timeout, &errors)
    }?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(e.error().message().to_string()),
        _ => None,
    }
}
