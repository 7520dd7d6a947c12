//! Running roma's own `main` inside the `node` executable, whose V8 roma-v8 calls.
//!
//! An executable cannot be linked as a library, so a program that uses roma-v8 is a shared
//! library that `node` loads before it starts (`LD_PRELOAD`). The library defines
//! `__libc_start_main` ([`crate::node_main!`]): the dynamic loader binds node's call to it instead of
//! glibc's, and it hands glibc's real one the library's `main` in place of node's. glibc then
//! runs every static initialiser (node's included; V8 needs its own) and calls that `main`;
//! node's runtime (its platform, libuv loop, bootstrap JS) never starts. roma-v8 sets V8 up
//! itself, with its own platform.

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

type CMain = unsafe extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) -> c_int;
type StartMain = unsafe extern "C" fn(
    CMain,
    c_int,
    *mut *mut c_char,
    *mut c_void,
    *mut c_void,
    *mut c_void,
    *mut c_void,
) -> c_int;

static MAIN: OnceLock<fn() -> i32> = OnceLock::new();

unsafe extern "C" fn trampoline(_: c_int, _: *mut *mut c_char, _: *mut *mut c_char) -> c_int {
    // Rust's own `main` would have done this: a write to a closed pipe or socket is an error
    // (EPIPE), not a signal that ends the process.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let main = MAIN.get().copied().unwrap_or(|| {
        eprintln!("roma-v8: started without a main");
        70
    });
    // A panic's message is already on stderr; unwinding into glibc is not allowed.
    std::panic::catch_unwind(main).unwrap_or(101)
}

/// The body of [`node_main!`]'s `__libc_start_main`: records `main` and starts glibc's real
/// `__libc_start_main` with a trampoline to it.
///
/// # Safety
/// Call only as `__libc_start_main`, with the arguments the process's start code passed.
#[doc(hidden)]
#[expect(
    clippy::too_many_arguments,
    reason = "glibc's __libc_start_main arguments, passed on as they came"
)]
pub unsafe fn start(
    main: fn() -> i32,
    name: &std::ffi::CStr,
    argc: c_int,
    argv: *mut *mut c_char,
    init: *mut c_void,
    fini: *mut c_void,
    rtld_fini: *mut c_void,
    stack_end: *mut c_void,
) -> c_int {
    let _ = MAIN.set(main);
    // SAFETY: RTLD_NEXT finds the next definition after this library: glibc's. The name is a
    // NUL-terminated literal.
    let real = unsafe { libc::dlsym(libc::RTLD_NEXT, c"__libc_start_main".as_ptr()) };
    if real.is_null() {
        const MSG: &[u8] = b"roma-v8: glibc's __libc_start_main was not found\n";
        // SAFETY: writes a static buffer to stderr; _exit has no preconditions.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
            libc::_exit(70)
        }
    }
    // The process's `comm` (what `ps` and /proc/<pid>/stat show), so that it does not read as
    // `node`. SAFETY: PR_SET_NAME copies at most 16 bytes from a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    // SAFETY: `real` is glibc's __libc_start_main, whose type StartMain is; the arguments are
    // the ones the start code passed to this function, with only `main` replaced.
    unsafe {
        let real: StartMain = std::mem::transmute::<*mut c_void, StartMain>(real);
        real(trampoline, argc, argv, init, fini, rtld_fini, stack_end)
    }
}

/// Makes the shared library being built run `$main` (a `fn() -> i32`, the exit status) when it
/// is preloaded into `node`, in place of node's own `main` (see the module docs), in a process
/// named `$name` (a `&CStr` of at most 15 bytes, e.g. `c"roma-worker"`). Use it once, in the
/// crate that is built as the `cdylib`. `std::env::args_os` works as in any program.
#[macro_export]
macro_rules! node_main {
    ($main:path, $name:expr) => {
        /// glibc's entry into `main`, interposed: runs this library's `main` instead of node's.
        ///
        /// # Safety
        /// Called by the process's start code only.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn __libc_start_main(
            _node_main: *mut ::std::ffi::c_void,
            argc: ::std::ffi::c_int,
            argv: *mut *mut ::std::ffi::c_char,
            init: *mut ::std::ffi::c_void,
            fini: *mut ::std::ffi::c_void,
            rtld_fini: *mut ::std::ffi::c_void,
            stack_end: *mut ::std::ffi::c_void,
        ) -> ::std::ffi::c_int {
            // SAFETY: this is __libc_start_main, called by the start code with its arguments.
            unsafe {
                $crate::node_entry::start(
                    $main, $name, argc, argv, init, fini, rtld_fini, stack_end,
                )
            }
        }
    };
}
