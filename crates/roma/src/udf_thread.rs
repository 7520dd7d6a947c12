//! The UDF handler thread of one worker: where that worker's synchronous host-function calls
//! run, so that the slot thread can take its request back when the request's time is up.
//!
//! A host function is user code and may block; run on the slot thread, a blocked one would hold
//! the slot (and its request) hostage past every timeout. So at a request's first synchronous
//! call the slot thread hands the request's whole [`Exchange`] to this thread, which runs the
//! call, answers the worker, and goes on driving the exchange (every later call runs here
//! directly, with no further hand-off between host threads) until the worker answers the
//! request; then it hands the exchange back. The slot thread waits with the request's deadline
//! and, if this thread is stuck in a function past it, takes the exchange back (see
//! `exchange`'s invariants): the thread is abandoned and exits when the function returns, and
//! the next request gets a new one.

use crate::exchange::{self, Exchange, ExchangeEnv, Outcome, SharedChannel, SyncCall};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

/// One request handed over: its exchange, the call that prompted the hand-over, and the channel
/// and generation it runs under.
struct HandOver<M> {
    ex: Exchange<M>,
    call: SyncCall,
    channel: SharedChannel,
    generation: u64,
}

/// What the thread hands back: the exchange and how it ended.
pub(crate) type Handback<M> = (Exchange<M>, Outcome);

/// The thread, from the slot's side.
pub(crate) struct UdfThread<M> {
    requests: Sender<HandOver<M>>,
    results: Receiver<Handback<M>>,
}

/// Why [`UdfThread::wait`] returned without a hand-back.
pub(crate) enum Waiting {
    /// Nothing yet within the slice.
    Slice,
    /// The thread is gone (it panicked): the exchange is lost.
    Gone,
}

impl<M: Send + Sync + 'static> UdfThread<M> {
    pub fn start(index: usize, env: Arc<ExchangeEnv<M>>) -> std::io::Result<Self> {
        let (requests, request_rx) = mpsc::channel::<HandOver<M>>();
        let (result_tx, results) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("roma-udf-{index}"))
            .spawn(move || {
                while let Ok(handed) = request_rx.recv() {
                    let Some(back) = serve(&env, handed) else {
                        // Abandoned: the slot thread answered the request without us.
                        return;
                    };
                    if result_tx.send(back).is_err() {
                        return;
                    }
                }
            })?;
        Ok(UdfThread { requests, results })
    }

    /// Hands a request over. `Err` gives the exchange back: the thread is gone.
    pub fn hand_over(
        &self,
        ex: Exchange<M>,
        call: SyncCall,
        channel: SharedChannel,
        generation: u64,
    ) -> Result<(), Box<(Exchange<M>, SyncCall)>> {
        let handed = HandOver {
            ex,
            call,
            channel,
            generation,
        };
        self.requests
            .send(handed)
            .map_err(|e| Box::new((e.0.ex, e.0.call)))
    }

    /// Waits up to `slice` for the request to come back.
    pub fn wait(&self, slice: Duration) -> Result<Handback<M>, Waiting> {
        self.results.recv_timeout(slice).map_err(|e| match e {
            RecvTimeoutError::Timeout => Waiting::Slice,
            RecvTimeoutError::Disconnected => Waiting::Gone,
        })
    }
}

/// Runs the handed-over call, then drives the exchange to its end. `None`: abandoned.
fn serve<M>(env: &ExchangeEnv<M>, handed: HandOver<M>) -> Option<Handback<M>> {
    let HandOver {
        mut ex,
        call,
        channel,
        generation,
    } = handed;
    match exchange::drive_handed_over(env, &channel, &mut ex, call, generation) {
        Outcome::Abandoned => None,
        outcome => Some((ex, outcome)),
    }
}
