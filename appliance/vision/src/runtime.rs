//! Loading the ONNX Runtime shared library (the `ort` crate's load-dynamic
//! mode: nothing is downloaded at build time) and creating sessions.

use crate::VisionError;
use headcount_domain::models::ModelEntry;
use ort::session::Session;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file name inside the PyPI wheel that setup installs.
const LIBRARY_NAME: &str = "libonnxruntime.so.1.31.1";
const DEFAULT_CACHE: &str = "/var/cache/headcount";

/// The loaded library and its environment: one per process, as ONNX Runtime
/// allows; later loads share the first.
#[derive(Clone)]
pub struct OnnxRuntime {
    environment: ort::environment::Environment,
}

static RUNTIME: Mutex<Option<OnnxRuntime>> = Mutex::new(None);

/// Where the Debian package installs the library.
const PACKAGED_DIR: &str = "/usr/lib/headcount";

/// Where the library is looked for: the configured path, else
/// `$ORT_DYLIB_PATH`; only when neither is set, beside the executable, where
/// the package puts it and in setup's cache. An explicit path that is wrong
/// is an error, not a hint.
pub fn find_library(configured: Option<&Path>) -> Result<PathBuf, VisionError> {
    let explicit = configured
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from));
    let candidates: Vec<PathBuf> = match explicit {
        Some(path) => vec![path],
        None => {
            let beside_exe = std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(|d| d.join(LIBRARY_NAME)));
            let cache = std::env::var_os("HEADCOUNT_CACHE")
                .map_or_else(|| PathBuf::from(DEFAULT_CACHE), PathBuf::from);
            beside_exe
                .into_iter()
                .chain([
                    Path::new(PACKAGED_DIR).join(LIBRARY_NAME),
                    cache.join("onnxruntime").join(LIBRARY_NAME),
                ])
                .collect()
        }
    };
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| VisionError::LibraryMissing {
            searched: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl OnnxRuntime {
    pub fn load(configured: Option<&Path>) -> Result<OnnxRuntime, VisionError> {
        let mut loaded = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(runtime) = loaded.as_ref() {
            return Ok(runtime.clone());
        }
        let path = find_library(configured)?;
        let unusable = |message: String| VisionError::LibraryUnusable {
            path: path.clone(),
            message,
        };
        let builder = ort::init_from(&path).map_err(|e| unusable(e.to_string()))?;
        let environment = builder
            .with_name("headcount")
            .build()
            .map_err(|e| unusable(e.to_string()))?;
        let runtime = OnnxRuntime { environment };
        *loaded = Some(runtime.clone());
        Ok(runtime)
    }

    /// Verifies the model against its manifest entry (size, sha256, input)
    /// and opens a session with `threads` intra-op threads.
    pub fn session(
        &self,
        models_dir: &Path,
        entry: &ModelEntry,
        threads: usize,
    ) -> Result<Session, VisionError> {
        let path = entry.verify(models_dir)?;
        let session_error = |message: String| VisionError::Session {
            path: path.clone(),
            message,
        };
        let session = open_session(&self.environment, &path, threads).map_err(session_error)?;
        let input = session
            .inputs()
            .first()
            .ok_or_else(|| session_error("model has no input".into()))?;
        let shape: Vec<i64> = input
            .dtype()
            .tensor_shape()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        if input.name() != entry.input.name || shape != entry.input.shape {
            return Err(VisionError::InputMismatch {
                path: path.clone(),
                expected: format!("{} {:?}", entry.input.name, entry.input.shape),
                actual: format!("{} {:?}", input.name(), shape),
            });
        }
        Ok(session)
    }
}

/// ort's builder errors are not `Send`, so they become strings right here.
fn open_session(
    environment: &ort::environment::Environment,
    path: &Path,
    threads: usize,
) -> Result<Session, String> {
    let builder = Session::builder(environment).map_err(|e| e.to_string())?;
    let mut builder = builder
        .with_intra_threads(threads)
        .map_err(|e| e.to_string())?
        .with_inter_threads(1)
        .map_err(|e| e.to_string())?
        // Spinning idle threads would steal the cores that the other
        // session, the decoders and the other workers need.
        .with_intra_op_spinning(false)
        .map_err(|e| e.to_string())?
        .with_inter_op_spinning(false)
        .map_err(|e| e.to_string())?
        // The memory-pattern plan would reserve each input shape's whole
        // plan besides the arena: 4 % faster, 50 MB more at 1080p redaction.
        .with_memory_pattern(false)
        .map_err(|e| e.to_string())?
        // The arena keeps the largest run's tensors between runs. Without
        // it every run maps its tensors afresh and faults them in (the
        // process keeps buffers of 128 KiB and more in their own mappings,
        // app/process/memory.rs): the person model took 2.5 and the face
        // model 5 times as long, most of it in the kernel.
        .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(true).build()])
        .map_err(|e| e.to_string())?;
    builder.commit_from_file(path).map_err(|e| e.to_string())
}

/// ort's errors during a run, as ours.
pub(crate) fn inference_error(e: ort::Error) -> VisionError {
    VisionError::Inference(e.to_string())
}

/// One named f32 output of a run; `model` names the model in the error.
pub(crate) fn output<'a>(
    outputs: &'a ort::session::SessionOutputs<'_>,
    model: &str,
    name: &str,
) -> Result<&'a [f32], VisionError> {
    outputs
        .get(name)
        .ok_or_else(|| VisionError::Inference(format!("{model} model has no output {name}")))?
        .try_extract_tensor::<f32>()
        .map(|(_, data)| data)
        .map_err(inference_error)
}
