//! Pipeline templates, compiled in from the top-level `pipelines/` folder.

pub const RTSP: &str = include_str!("../../../pipelines/rtsp.pipeline");
pub const FILE: &str = include_str!("../../../pipelines/file.pipeline");
pub const TESTSRC: &str = include_str!("../../../pipelines/testsrc.pipeline");
pub const RTSP_SERVER: &str = include_str!("../../../pipelines/rtsp-server.pipeline");
pub const ENCODE: &str = include_str!("../../../pipelines/encode.pipeline");

/// The FILE template's `{scale}`: nothing for the native resolution, else a
/// scaler to `width` with square pixels.
pub fn scale_to(width: Option<u32>) -> String {
    width
        .map(|w| format!("videoscale ! video/x-raw,width={w},pixel-aspect-ratio=1/1 !"))
        .unwrap_or_default()
}

/// Drops `#` comment lines, joins the rest and fills `{name}` placeholders.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut text = template
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    for (name, value) in values {
        text = text.replace(&format!("{{{name}}}"), value);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_without_leftover_placeholders() {
        let cases = [
            render(RTSP, &[("fps", "2/1"), ("width", "640")]),
            render(FILE, &[("rate", ""), ("scale", "")]),
            render(FILE, &[("rate", ""), ("scale", &scale_to(Some(640)))]),
            render(ENCODE, &[("mux", "mp4mux")]),
            render(
                TESTSRC,
                &[("fps", "2/1"), ("width", "640"), ("pattern", "ball")],
            ),
            render(RTSP_SERVER, &[("location", "/tmp/x.ts")]),
        ];
        for text in &cases {
            assert!(!text.contains('{') || text.starts_with('('), "{text}");
            assert!(!text.contains('#'), "{text}");
        }
        assert!(
            cases[0].contains("framerate=2/1 ! videoscale"),
            "{}",
            cases[0]
        );
    }

    #[test]
    fn every_template_parses_in_gstreamer() {
        crate::init().unwrap();
        for text in [
            render(RTSP, &[("fps", "2/1"), ("width", "640")]),
            render(
                FILE,
                &[
                    (
                        "rate",
                        "videorate drop-only=true ! video/x-raw,framerate=2/1 !",
                    ),
                    ("scale", &scale_to(Some(640))),
                ],
            ),
            render(FILE, &[("rate", ""), ("scale", "")]),
            render(ENCODE, &[("mux", "mp4mux")]),
            render(ENCODE, &[("mux", "matroskamux")]),
            render(
                TESTSRC,
                &[("fps", "2/1"), ("width", "640"), ("pattern", "ball")],
            ),
        ] {
            gstreamer::parse::launch(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }
}
