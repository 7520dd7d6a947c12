//! The process-wide V8 platform: initialised once, with flags set before that.

use crate::ffi;
use roma_core::RomaError;
use std::ffi::CStr;
use std::sync::OnceLock;

static FLAGS: OnceLock<String> = OnceLock::new();

/// Initialises V8 for this process with `flags` (V8 command-line flags such as
/// `--wasm-max-mem-pages=16`). The first call wins: V8 reads its flags once. A later call with
/// different flags is an error (flags are process-wide), the same flags are fine.
pub fn init(flags: &[String]) -> Result<(), RomaError> {
    let wanted = flags.join(" ");
    let mut first = false;
    let set = FLAGS.get_or_init(|| {
        first = true;
        // SAFETY: the shim's init is idempotent and thread-safe (an atomic guards it); the
        // pointer and length describe `wanted`, alive for the call.
        unsafe { ffi::roma_v8_init(wanted.as_ptr().cast(), wanted.len()) };
        wanted.clone()
    });
    if !first && *set != wanted {
        return Err(RomaError::invalid_argument(format!(
            "V8 flags are process-wide and were already set to `{set}`; cannot change them to `{wanted}`"
        )));
    }
    Ok(())
}

/// Whether V8 has been initialised in this process.
pub fn is_initialized() -> bool {
    FLAGS.get().is_some()
}

/// The V8 version string, e.g. `10.2.154.26-node.36`.
pub fn v8_version() -> String {
    // SAFETY: returns a pointer to V8's static, NUL-terminated version string.
    let p = unsafe { ffi::roma_v8_version() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated, static storage.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}
