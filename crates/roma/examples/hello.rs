//! The README's Rust snippet, runnable: start a service with two sandboxed workers, load the
//! hello world, call its `Handler` with `"Foobar"`.
//!
//! ```sh
//! cargo build -p roma-worker && cargo run -p roma --example hello
//! # "Hello world! \"Foobar\""
//! ```

use roma::{CodeObject, Config, InvocationRequest, RomaError, RomaService};
use std::sync::mpsc;

fn run() -> Result<String, RomaError> {
    let src = include_str!("../../../examples/hello.js");

    let mut config: Config = Config::default();
    config.number_of_workers = 2;
    let roma = RomaService::new(config)?;

    // Load once; the callback runs when every worker has the code.
    let (tx, rx) = mpsc::channel();
    roma.load_code_obj(
        CodeObject {
            id: "foo".into(),
            version_string: "v1".into(),
            js: src.into(),
            ..Default::default()
        },
        move |r| {
            let _ = tx.send(r);
        },
    )?;
    rx.recv()
        .map_err(|_| RomaError::internal("the load callback was dropped"))??;

    // Invoke; each call runs in a fresh V8 context.
    let (tx, rx) = mpsc::channel();
    roma.execute(
        InvocationRequest {
            id: "foo".into(),
            version_string: "v1".into(),
            handler_name: "Handler".into(),
            input: vec![r#""Foobar""#.into()],
            ..Default::default()
        },
        move |r| {
            let _ = tx.send(r);
        },
    )?;
    let response = rx
        .recv()
        .map_err(|_| RomaError::internal("the execute callback was dropped"))??;
    roma.stop()?;
    Ok(response.resp)
}

fn main() -> Result<(), RomaError> {
    println!("{}", run()?);
    Ok(())
}

#[cfg(test)]
mod tests {
    /// `cargo test -p roma --example hello` (and `cargo test -p roma`) runs the example.
    #[test]
    fn the_example_runs() {
        assert_eq!(super::run().unwrap(), r#""Hello world! \"Foobar\"""#);
    }
}
