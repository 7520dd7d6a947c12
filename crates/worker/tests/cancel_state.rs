//! The worker's cancellation bookkeeping, tested on its own: the worker library itself runs only
//! inside `node` (it links V8), but this part is plain Rust.

#[path = "../src/cancel_state.rs"]
mod cancel_state;
