//! The accounting harness shared by `hostile.rs` and `faults.rs`: a service with a version
//! `v1` and hello world (`hello`) loaded, that counts requests submitted, callbacks delivered and
//! each outcome, and checks at the end that hello world still works and nothing was lost.

use crate::common::*;
use roma::{
    CodeObject, Config, ErrorKind, InvocationRequest, ResponseObject, RomaError, RomaService,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// Requests submitted, callbacks delivered and each outcome, for one test.
#[derive(Default)]
pub struct Tally {
    pub submitted: AtomicUsize,
    pub delivered: AtomicUsize,
    pub outcomes: Mutex<BTreeMap<&'static str, usize>>,
}

impl Tally {
    pub fn record(&self, r: &Reply) {
        self.delivered.fetch_add(1, Ordering::SeqCst);
        let kind = match r {
            Ok(_) => "ok",
            Err(e) => e.kind().as_str(),
        };
        *self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind)
            .or_default() += 1;
    }
}

/// Where a counted request's one answer arrives.
pub type Answer = mpsc::Receiver<Reply>;

/// A service with the corpus loaded as `v1` and hello world as `hello`, counting every request.
pub struct Harness<M: Send + Sync + 'static = ()> {
    pub svc: RomaService<M>,
    pub tally: Arc<Tally>,
}

impl<M: Default + Send + Sync + 'static> Harness<M> {
    pub fn with_code(config: Config<M>, v1: CodeObject) -> Self {
        let h = Harness {
            svc: RomaService::new(config).expect("service starts"),
            tally: Arc::default(),
        };
        h.load(v1).expect("v1 loads");
        h.load(code("hello", HELLO)).expect("hello world loads");
        h
    }

    /// A callback that records its answer in the tally, then sends it to the receiver.
    fn counted(&self) -> (impl FnOnce(Reply) + Send + 'static, Answer) {
        let (tx, rx) = mpsc::channel();
        let tally = Arc::clone(&self.tally);
        let callback = move |r: Reply| {
            tally.record(&r);
            let _ = tx.send(r);
        };
        (callback, rx)
    }

    /// Submits loading `code`, counted, without waiting for it.
    pub fn submit_load(&self, code: CodeObject) -> Result<Answer, RomaError> {
        let (callback, rx) = self.counted();
        self.svc.load_code_obj(code, callback)?;
        self.tally.submitted.fetch_add(1, Ordering::SeqCst);
        Ok(rx)
    }

    /// Submits `req`, counted, without waiting for it.
    pub fn submit(&self, req: InvocationRequest<M>) -> Result<Answer, RomaError> {
        let (callback, rx) = self.counted();
        self.svc.execute(req, callback)?;
        self.tally.submitted.fetch_add(1, Ordering::SeqCst);
        Ok(rx)
    }

    pub fn load(&self, code: CodeObject) -> Result<ResponseObject, RomaError> {
        let answer = self.submit_load(code)?;
        answer
            .recv_timeout(PATIENCE)
            .expect("load callback arrives")
    }

    pub fn exec(&self, req: InvocationRequest<M>) -> Result<ResponseObject, RomaError> {
        let answer = self.submit(req)?;
        answer
            .recv_timeout(PATIENCE)
            .expect("execute callback arrives")
    }

    /// Runs `handler` of `v1` with a generous timeout.
    pub fn call(&self, handler: &str, inputs: &[&str]) -> Result<ResponseObject, RomaError> {
        self.call_within(handler, inputs, Duration::from_secs(30))
    }

    pub fn call_within(
        &self,
        handler: &str,
        inputs: &[&str],
        timeout: Duration,
    ) -> Result<ResponseObject, RomaError> {
        let mut req = request::<M>("v1", handler, inputs);
        req.timeout = Some(timeout);
        self.exec(req)
    }

    /// The error of a call that must fail with `kind`.
    pub fn fails(&self, handler: &str, timeout: Duration, kind: ErrorKind) -> RomaError {
        let e = self.call_within(handler, &[], timeout).expect_err(handler);
        assert_eq!(e.kind(), kind, "{handler}: {e}");
        e
    }

    /// The response of a call that must succeed.
    pub fn ok(&self, handler: &str, inputs: &[&str]) -> String {
        match self.call(handler, inputs) {
            Ok(r) => r.resp,
            Err(e) => panic!("{handler}: {e}"),
        }
    }

    pub fn assert_hello(&self) {
        let r = self
            .exec(request::<M>("hello", "Handler", &[r#""Foobar""#]))
            .expect("hello world after the hostile code");
        assert_eq!(r.resp, r#""Hello world! \"Foobar\"""#);
    }

    /// Hello world still works, and every accepted request got its callback.
    pub fn finish(&self) {
        self.assert_hello();
        let submitted = self.tally.submitted.load(Ordering::SeqCst);
        let delivered = self.tally.delivered.load(Ordering::SeqCst);
        let outcomes = self.tally.outcomes.lock().unwrap().clone();
        println!("submitted {submitted}, delivered {delivered}, outcomes {outcomes:?}");
        assert_eq!(
            submitted, delivered,
            "lost or extra callbacks: {outcomes:?}"
        );
        assert_eq!(outcomes.values().sum::<usize>(), delivered);
    }

    /// [`Harness::finish`], then stop the service.
    pub fn done(self) {
        self.finish();
        self.svc.stop();
    }
}
