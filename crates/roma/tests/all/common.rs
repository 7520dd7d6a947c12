//! Helpers shared by the service tests.

use roma::{
    CodeObject, Config, InvocationRequest, ResponseObject, RomaError, RomaService, SandboxKind,
};
use std::sync::mpsc;
use std::time::Duration;

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

pub fn code(version: &str, js: &str) -> CodeObject {
    CodeObject {
        id: format!("load-{version}"),
        version_string: version.into(),
        js: js.into(),
        ..Default::default()
    }
}

pub fn load<M: Send + Sync + 'static>(
    svc: &RomaService<M>,
    code: CodeObject,
) -> Result<ResponseObject, RomaError> {
    let (tx, rx) = mpsc::channel();
    svc.load_code_obj(code, move |r| {
        let _ = tx.send(r);
    })?;
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
    let (tx, rx) = mpsc::channel();
    svc.execute(req, move |r| {
        let _ = tx.send(r);
    })?;
    rx.recv_timeout(PATIENCE).expect("execute callback arrives")
}

/// Runs a future to completion on this thread (no executor crate needed).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "future never completed"
        );
        std::thread::park_timeout(std::time::Duration::from_millis(100));
    }
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
