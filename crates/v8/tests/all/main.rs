//! roma-v8 engine tests: one binary, one module per area.

mod common;
mod errors;
mod js;
mod limits;
mod versions;
mod wasm;
