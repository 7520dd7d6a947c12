//! A registered host function, and what it is handed when JS calls it.

use crate::io::FunctionBindingIo;
use std::fmt;
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

/// A host function under the name JS calls it by. A dotted name (`foo.bar.func1`) creates the
/// nested objects in JS.
pub struct FunctionBindingObject<M> {
    name: String,
    func: Arc<BindingFn<M>>,
}

impl<M> FunctionBindingObject<M> {
    /// A host function `name` that runs `func`. Names are checked when the service starts.
    pub fn new<F>(name: impl Into<String>, func: F) -> Self
    where
        F: Fn(&mut FunctionBindingPayload<'_, M>) + Send + Sync + 'static,
    {
        FunctionBindingObject {
            name: name.into(),
            func: Arc::new(func),
        }
    }

    /// The name JS calls it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn call(&self, payload: &mut FunctionBindingPayload<'_, M>) {
        (self.func)(payload)
    }
}

impl<M> Clone for FunctionBindingObject<M> {
    fn clone(&self) -> Self {
        FunctionBindingObject {
            name: self.name.clone(),
            func: Arc::clone(&self.func),
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
