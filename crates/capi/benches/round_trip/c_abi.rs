//! The C ABI's contenders: one service driven through roma's C functions, taken either from
//! the copy of roma linked into the bench or from `libroma_c.so`, the copy the C++ side runs
//! on. The two differ in nothing but which copy of roma's code (and of Rust's standard
//! library) does the work, which is what tells a cost of the C++ layer from a cost of running
//! in the second copy.

use super::dl;
use roma_c::*;
use std::ffi::{c_char, c_void};
use std::path::Path;
use std::sync::mpsc;

/// Declares [`CAbi`] with one field per C function the bench calls, named as the function.
macro_rules! c_abi {
    ($($f:ident: fn($($a:ty),*) $(-> $r:ty)?;)*) => {
        /// The C functions the bench calls, from one copy of roma.
        pub struct CAbi {
            $($f: unsafe extern "C" fn($($a),*) $(-> $r)?,)*
        }

        impl CAbi {
            /// The functions linked into the bench.
            pub fn linked() -> CAbi {
                CAbi { $($f: roma_c::$f,)* }
            }

            /// The functions of the shared library at `path` (opened for good).
            pub fn shared(path: &Path) -> CAbi {
                let lib = dl::open(path);
                // SAFETY: `lib` is never closed; each symbol is the C function of the field's
                // name, whose type the field has (both copies are this crate's build).
                unsafe { CAbi { $($f: dl::function(lib, stringify!($f)),)* } }
            }
        }
    };
}

c_abi! {
    roma_config_new: fn() -> *mut roma_config_t;
    roma_config_set_number_of_workers: fn(*mut roma_config_t, usize) -> *mut roma_error_t;
    roma_config_set_worker_library:
        fn(*mut roma_config_t, *const c_char, usize) -> *mut roma_error_t;
    roma_service_new: fn(*mut roma_config_t, *mut *mut roma_service_t) -> *mut roma_error_t;
    roma_service_delete: fn(*mut roma_service_t);
    roma_service_load: fn(
        *const roma_service_t,
        *const roma_code_object_t,
        Option<roma_callback_t>,
        *mut c_void
    ) -> *mut roma_error_t;
    roma_service_execute: fn(
        *const roma_service_t,
        *const roma_request_t,
        Option<roma_callback_t>,
        *mut c_void,
        *mut *mut roma_execution_token_t
    ) -> *mut roma_error_t;
    roma_service_execute_blocking: fn(
        *const roma_service_t,
        *const roma_request_t,
        *mut *mut roma_response_t
    ) -> *mut roma_error_t;
    roma_code_object_new: fn() -> *mut roma_code_object_t;
    roma_code_object_set_version:
        fn(*mut roma_code_object_t, *const c_char, usize) -> *mut roma_error_t;
    roma_code_object_set_js: fn(*mut roma_code_object_t, *const c_char, usize) -> *mut roma_error_t;
    roma_code_object_delete: fn(*mut roma_code_object_t);
    roma_request_new: fn() -> *mut roma_request_t;
    roma_request_set_version: fn(*mut roma_request_t, *const c_char, usize) -> *mut roma_error_t;
    roma_request_set_handler: fn(*mut roma_request_t, *const c_char, usize) -> *mut roma_error_t;
    roma_request_add_input: fn(*mut roma_request_t, *const c_char, usize) -> *mut roma_error_t;
    roma_request_delete: fn(*mut roma_request_t);
    roma_response_delete: fn(*mut roma_response_t);
    roma_error_delete: fn(*mut roma_error_t);
}

fn ok(e: *mut roma_error_t) {
    assert!(e.is_null(), "a C API call failed");
}

/// What one callback owns: where to send the answer, and the copy whose `_delete`s free it.
struct Reply {
    tx: mpsc::Sender<bool>,
    abi: &'static CAbi,
}

unsafe extern "C" fn answered(data: *mut c_void, r: *mut roma_response_t, e: *mut roma_error_t) {
    // SAFETY: `data` is the boxed `Reply` that `reply` made for this one callback, which owns
    // it: the submitter cannot free it while `send` still runs.
    let reply = unsafe { Box::from_raw(data.cast::<Reply>()) };
    let _ = reply.tx.send(!r.is_null());
    // SAFETY: the callback owns both, made by the same copy as `abi`; null is ignored.
    unsafe {
        (reply.abi.roma_response_delete)(r);
        (reply.abi.roma_error_delete)(e);
    }
}

/// A reply for one callback, owned by it.
fn reply(tx: &mpsc::Sender<bool>, abi: &'static CAbi) -> *mut c_void {
    Box::into_raw(Box::new(Reply {
        tx: tx.clone(),
        abi,
    }))
    .cast()
}

/// A one-worker service with the handler loaded, driven through one copy's C functions.
pub struct CService {
    abi: &'static CAbi,
    service: *mut roma_service_t,
}

impl CService {
    pub fn new(abi: &'static CAbi, worker: &Path, js: &str) -> CService {
        let w = worker.display().to_string();
        // SAFETY: every pointer comes from the C API or a live Rust value, as the headers ask.
        unsafe {
            let c = (abi.roma_config_new)();
            ok((abi.roma_config_set_number_of_workers)(c, 1));
            ok((abi.roma_config_set_worker_library)(
                c,
                w.as_ptr().cast(),
                w.len(),
            ));
            let mut service = std::ptr::null_mut();
            ok((abi.roma_service_new)(c, &mut service));
            let code = (abi.roma_code_object_new)();
            ok((abi.roma_code_object_set_version)(code, c"v1".as_ptr(), 2));
            ok((abi.roma_code_object_set_js)(
                code,
                js.as_ptr().cast(),
                js.len(),
            ));
            let (tx, rx) = mpsc::channel::<bool>();
            ok((abi.roma_service_load)(
                service,
                code,
                Some(answered),
                reply(&tx, abi),
            ));
            assert!(rx.recv().expect("the load's answer"));
            (abi.roma_code_object_delete)(code);
            CService { abi, service }
        }
    }

    /// The hello-world request, owned by the caller.
    fn request(&self) -> *mut roma_request_t {
        let abi = self.abi;
        let input = r#""Foobar""#;
        // SAFETY: as in `new`.
        unsafe {
            let r = (abi.roma_request_new)();
            ok((abi.roma_request_set_version)(r, c"v1".as_ptr(), 2));
            ok((abi.roma_request_set_handler)(r, c"Handler".as_ptr(), 7));
            ok((abi.roma_request_add_input)(
                r,
                input.as_ptr().cast(),
                input.len(),
            ));
            r
        }
    }

    /// One hello-world round trip: a request built, executed with a callback, the answer
    /// awaited on a channel.
    pub fn call(&self) {
        let abi = self.abi;
        let (tx, rx) = mpsc::channel::<bool>();
        let r = self.request();
        // SAFETY: as in `new`; `tx` outlives the callback, which is awaited below.
        unsafe {
            ok((abi.roma_service_execute)(
                self.service,
                r,
                Some(answered),
                reply(&tx, abi),
                std::ptr::null_mut(),
            ));
            (abi.roma_request_delete)(r);
        }
        assert!(rx.recv().expect("the answer"), "the C round trip failed");
    }

    /// One hello-world round trip through `roma_service_execute_blocking`.
    pub fn call_blocking(&self) {
        let abi = self.abi;
        let r = self.request();
        let mut response = std::ptr::null_mut();
        // SAFETY: as in `new`; the response is owned here and freed once.
        unsafe {
            ok((abi.roma_service_execute_blocking)(
                self.service,
                r,
                &mut response,
            ));
            assert!(!response.is_null(), "the blocking C round trip failed");
            (abi.roma_response_delete)(response);
            (abi.roma_request_delete)(r);
        }
    }
}

impl Drop for CService {
    fn drop(&mut self) {
        // SAFETY: the service was made by this copy's `roma_service_new` and is deleted once.
        unsafe { (self.abi.roma_service_delete)(self.service) };
    }
}
