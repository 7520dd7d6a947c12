//! Helpers shared by the service tests.

use roma::{
    CodeObject, Config, InvocationRequest, ResponseObject, RomaError, RomaService, SandboxKind,
};
use std::sync::mpsc;
use std::time::Duration;

// One definition of the code objects and the future runner, shared with roma-dispatch's tests.
#[path = "../../../dispatch/tests/all/shared.rs"]
pub mod shared;
pub use shared::code;

/// How long a test waits for a callback before calling it lost: a safety net, not a timing
/// assertion.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const HELLO: &str =
    r#"function Handler(input) { return "Hello world! " + JSON.stringify(input); }"#;

/// The sandbox the tests use: `ROMA_TEST_SANDBOX` (namespaces, birdcage, none), else the
/// default (namespaces).
pub fn sandbox() -> SandboxKind {
    match std::env::var("ROMA_TEST_SANDBOX").as_deref() {
        Ok("none") => SandboxKind::None,
        Ok("birdcage") => SandboxKind::Birdcage,
        _ => SandboxKind::Namespaces,
    }
}

pub fn config<M>(workers: usize) -> Config<M> {
    let mut c = Config::new();
    c.number_of_workers(workers);
    c.sandbox(sandbox());
    c
}

pub fn service(workers: usize) -> RomaService {
    RomaService::new(config(workers)).expect("service starts")
}

/// A service of `workers` workers with version `v1`: `Spin` (loops forever) and `Handler`
/// (hello world).
pub fn spin_and_hello_service(workers: usize) -> RomaService {
    let svc = service(workers);
    let js = format!("function Spin() {{ while (true) {{}} }} {HELLO}");
    load(&svc, code("v1", &js)).expect("v1 loads");
    svc
}

/// What a load's or an execution's callback gets.
pub type Reply = Result<ResponseObject, RomaError>;

/// A callback that sends its answer to the receiver.
fn answer() -> (impl FnOnce(Reply) + Send + 'static, mpsc::Receiver<Reply>) {
    let (tx, rx) = mpsc::channel();
    let callback = move |r: Reply| {
        let _ = tx.send(r);
    };
    (callback, rx)
}

pub fn load<M: Send + Sync + 'static>(
    svc: &RomaService<M>,
    code: CodeObject,
) -> Result<ResponseObject, RomaError> {
    let (callback, rx) = answer();
    svc.load_code_obj(code, callback)?;
    rx.recv_timeout(PATIENCE).expect("load callback arrives")
}

pub fn request<M: Default>(version: &str, handler: &str, inputs: &[&str]) -> InvocationRequest<M> {
    InvocationRequest {
        id: "req".into(),
        version_string: version.into(),
        handler_name: handler.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn exec<M: Send + Sync + 'static>(
    svc: &RomaService<M>,
    req: InvocationRequest<M>,
) -> Result<ResponseObject, RomaError> {
    let (callback, rx) = answer();
    svc.execute(req, callback)?;
    rx.recv_timeout(PATIENCE).expect("execute callback arrives")
}

/// Waits until `cond` holds (at most [`PATIENCE`]).
pub fn wait_for(cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "condition never held");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Held by the tests that make worker cgroups, so that one test's count of the host's worker
/// cgroups sees only its own.
pub static CGROUPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`CGROUPS`] (a test that panicked holding it leaves nothing to protect).
pub fn cgroup_lock() -> std::sync::MutexGuard<'static, ()> {
    CGROUPS.lock().unwrap_or_else(|p| p.into_inner())
}
