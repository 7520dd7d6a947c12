//! The C++ API's contender: `cpp_round_trip.cpp` compiled with the system C++ compiler into a
//! shared library against this build's `libroma_c.so`, loaded with `dlopen`.

use super::dl;
use std::ffi::{CString, c_char, c_void};
use std::path::Path;
use std::process::Command;

type Start = unsafe extern "C" fn(worker_library: *const c_char) -> *mut c_void;
type Call = unsafe extern "C" fn(service: *mut c_void) -> bool;
type Stop = unsafe extern "C" fn(service: *mut c_void);

/// The three functions of the compiled library.
#[derive(Clone, Copy)]
pub struct CppLib {
    start: Start,
    call: Call,
    stop: Stop,
}

/// Compiles `cpp_round_trip.cpp` against the `libroma_c.so` in `deps` (the bench's folder,
/// `target/release/deps`) and the repository's headers, and loads it.
pub fn build(deps: &Path) -> CppLib {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = deps.join("libroma_bench_cpp.so");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let status = Command::new(&cxx)
        .args(["-std=c++17", "-O2", "-fPIC", "-shared"])
        .arg(format!("-I{}", manifest.join("../../include").display()))
        .arg(manifest.join("benches/cpp_round_trip.cpp"))
        .arg(format!("-L{}", deps.display()))
        .arg(format!("-Wl,-rpath,{}", deps.display()))
        .args(["-lroma_c", "-lpthread", "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("{cxx}: {e}"));
    assert!(status.success(), "{cxx} cpp_round_trip.cpp failed");
    let lib = dl::open(&out);
    // SAFETY: `lib` is never closed; the three functions have the types named here
    // (cpp_round_trip.cpp's extern "C" declarations).
    unsafe {
        CppLib {
            start: dl::function(lib, "bench_cpp_start"),
            call: dl::function(lib, "bench_cpp_call"),
            stop: dl::function(lib, "bench_cpp_stop"),
        }
    }
}

/// A `roma::RomaService<>` of the C++ API, one worker, Roma's hello world loaded.
pub struct CppService {
    lib: CppLib,
    service: *mut c_void,
}

impl CppService {
    pub fn new(lib: CppLib, worker: &Path) -> CppService {
        let w = CString::new(worker.display().to_string()).expect("a path without NUL");
        // SAFETY: `w` is NUL-terminated and outlives the call.
        let service = unsafe { (lib.start)(w.as_ptr()) };
        assert!(!service.is_null(), "the C++ service did not start");
        CppService { lib, service }
    }

    /// One round trip as Roma's Getting Started writes it.
    pub fn call(&self) {
        // SAFETY: `service` came from `bench_cpp_start` and is stopped only on drop.
        let ok = unsafe { (self.lib.call)(self.service) };
        assert!(ok, "the C++ round trip failed");
    }
}

impl Drop for CppService {
    fn drop(&mut self) {
        // SAFETY: as in `call`; stopped once.
        unsafe { (self.lib.stop)(self.service) };
    }
}
