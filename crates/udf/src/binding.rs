//! A registered host function, and what it is handed when JS calls it.

use crate::io::FunctionBindingIo;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What a host function receives: the call's io (read `input`, write `output` or `errors`)
/// and the metadata of the request whose code made the call.
pub struct FunctionBindingPayload<'a, M> {
    /// Input and output of this call.
    pub io: FunctionBindingIo,
    /// The request's metadata; it stays in the host.
    pub metadata: &'a M,
}

type BindingFn<M> = dyn Fn(&mut FunctionBindingPayload<'_, M>) + Send + Sync;
type AsyncBindingFn<M> = dyn Fn(FunctionBindingIo, &M) -> BindingFuture + Send + Sync;

/// What an asynchronous host function returns: a future of the call's io (output or errors).
/// It runs on roma's binding executor, a pool of threads that each drive one future to
/// completion, so it must not need a particular async runtime; a binding that uses one (tokio,
/// say) spawns its work there and returns a future that waits for the result.
pub type BindingFuture = Pin<Box<dyn Future<Output = FunctionBindingIo> + Send + 'static>>;

pub(crate) enum Func<M> {
    Sync(Arc<BindingFn<M>>),
    Async(Arc<AsyncBindingFn<M>>),
}

/// A host function under the name JS calls it by. A dotted name (`foo.bar.func1`) creates the
/// nested objects in JS.
pub struct FunctionBindingObject<M> {
    name: String,
    pub(crate) func: Func<M>,
}

impl<M> FunctionBindingObject<M> {
    /// A host function `name` that runs `func`. Names are checked when the service starts.
    pub fn new<F>(name: impl Into<String>, func: F) -> Self
    where
        F: Fn(&mut FunctionBindingPayload<'_, M>) + Send + Sync + 'static,
    {
        FunctionBindingObject {
            name: name.into(),
            func: Func::Sync(Arc::new(func)),
        }
    }

    /// An asynchronous host function: in JS it returns a Promise at once, and the handler can
    /// await several of them together (`Promise.all`). `func` runs on the slot's thread with
    /// the request's metadata and returns a future (taking from `&M` what it needs); the
    /// future runs on roma's binding executor.
    pub fn new_async<F>(name: impl Into<String>, func: F) -> Self
    where
        F: Fn(FunctionBindingIo, &M) -> BindingFuture + Send + Sync + 'static,
    {
        FunctionBindingObject {
            name: name.into(),
            func: Func::Async(Arc::new(func)),
        }
    }

    /// Whether the function is asynchronous.
    pub fn is_async(&self) -> bool {
        matches!(self.func, Func::Async(_))
    }

    /// The name JS calls it by.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<M> Clone for FunctionBindingObject<M> {
    fn clone(&self) -> Self {
        FunctionBindingObject {
            name: self.name.clone(),
            func: match &self.func {
                Func::Sync(f) => Func::Sync(Arc::clone(f)),
                Func::Async(f) => Func::Async(Arc::clone(f)),
            },
        }
    }
}

impl<M> fmt::Debug for FunctionBindingObject<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionBindingObject")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<M> fmt::Debug for FunctionBindingPayload<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionBindingPayload")
            .field("io", &self.io)
            .finish_non_exhaustive()
    }
}
