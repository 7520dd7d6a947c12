//! `dlopen` and `dlsym` for the bench's shared libraries (the C++ side and `libroma_c.so`).

use std::ffi::{CString, c_void};
use std::path::Path;

/// Opens `path` for good (the handle is never closed, so its symbols stay valid).
pub fn open(path: &Path) -> *mut c_void {
    let so = CString::new(path.display().to_string()).expect("a path without NUL");
    // SAFETY: `so` is NUL-terminated; the libraries the bench opens run no code at load time
    // beyond their static constructors.
    let lib = unsafe { libc::dlopen(so.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!lib.is_null(), "dlopen of {} failed", path.display());
    lib
}

/// The function `name` of `lib`, as a function pointer of type `F`.
///
/// # Safety
/// `lib` is a live `dlopen` handle that is never closed, and `F` is the true type of the
/// function `name` (a function pointer).
pub unsafe fn function<F: Copy>(lib: *mut c_void, name: &str) -> F {
    assert_eq!(
        size_of::<F>(),
        size_of::<*mut c_void>(),
        "{name}: F is not a function pointer"
    );
    let c_name = CString::new(name).expect("a name without NUL");
    // SAFETY: `lib` is live (the caller's contract); `c_name` is NUL-terminated.
    let p = unsafe { libc::dlsym(lib, c_name.as_ptr()) };
    assert!(!p.is_null(), "{name} is not in the library");
    // SAFETY: the caller's contract makes `F` the function's pointer type, of the size of `p`
    // (checked above); the library stays loaded, so the function stays valid.
    unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) }
}
