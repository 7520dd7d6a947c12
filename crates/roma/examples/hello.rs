//! The README's Rust snippet, runnable: start a service with two sandboxed workers, load the
//! hello world, call its `Handler` with `"Foobar"`. The code between the `README` markers is
//! the README's snippet, word for word (a test checks it).
//!
//! ```sh
//! cargo build -p roma-worker && cargo run -p roma --example hello
//! # "Hello world! \"Foobar\""
//! ```

// README begin
use roma::{CodeObject, Config, InvocationRequest, RomaError, RomaService};

fn main() -> Result<(), RomaError> {
    println!("{}", hello()?);
    Ok(())
}

/// Starts roma, loads the hello world once, and calls it.
fn hello() -> Result<String, RomaError> {
    let js = r#"function Handler(input) { return "Hello world! " + JSON.stringify(input); }"#;
    let mut config = Config::default();
    config.number_of_workers(2);
    let roma = RomaService::new(config)?;
    // Returns once every worker has the code.
    roma.load_blocking(CodeObject::js("v1", js))?;
    // Each call runs in a fresh V8 context; this one returns with the response.
    let input = vec![r#""Foobar""#.to_string()];
    let response = roma.execute_blocking(InvocationRequest::new("v1", "Handler", input))?;
    Ok(response.resp)
}
// README end

#[cfg(test)]
mod tests {
    /// `cargo test -p roma --example hello` (and `cargo test -p roma`) runs the example.
    #[test]
    fn the_example_runs() {
        assert_eq!(super::hello().unwrap(), r#""Hello world! \"Foobar\"""#);
    }

    /// The README shows the example's code, word for word, so that what a newcomer pastes is
    /// what this test runs.
    #[test]
    fn the_readme_shows_this_code() {
        let example = include_str!("hello.rs");
        let readme = include_str!("../../../README.md");
        let snippet = between(example, "// README begin\n", "// README end\n");
        let block = between(readme, "```rust\n", "```\n");
        assert_eq!(
            block, snippet,
            "README.md's Rust snippet must be examples/hello.rs's code"
        );
    }

    fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
        let from = text.find(start).expect("start marker") + start.len();
        let len = text[from..].find(end).expect("end marker");
        &text[from..from + len]
    }
}
