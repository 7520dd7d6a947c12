//! The README's Rust snippet, runnable: start a service with two sandboxed workers, load the
//! hello world, call its `Handler` with `"Foobar"`. The body of `run` between the `README`
//! markers is the README's snippet, word for word (a test checks it).
//!
//! ```sh
//! cargo build -p roma-worker && cargo run -p roma --example hello
//! # "Hello world! \"Foobar\""
//! ```

use roma::RomaError;

fn run() -> Result<String, RomaError> {
    let src = include_str!("../../../examples/hello.js");
    // README begin
    use roma::{CodeObject, Config, InvocationRequest, RomaService};

    let mut config = Config::default();
    config.number_of_workers(2);
    let roma = RomaService::new(config)?;
    // Load once; returns when every worker has the code.
    roma.load_blocking(CodeObject::js("v1", src))?;
    // Each call runs in a fresh V8 context; this one returns with the response.
    let input = vec![r#""Foobar""#.to_string()];
    let response = roma.execute_blocking(InvocationRequest::new("v1", "Handler", input))?;
    println!("{}", response.resp);
    // README end
    Ok(response.resp)
}

fn main() -> Result<(), RomaError> {
    run()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// `cargo test -p roma --example hello` (and `cargo test -p roma`) runs the example.
    #[test]
    fn the_example_runs() {
        assert_eq!(super::run().unwrap(), r#""Hello world! \"Foobar\"""#);
    }

    /// The README shows the example's code, word for word, so that what a newcomer pastes is
    /// what this test runs.
    #[test]
    fn the_readme_shows_this_code() {
        let example = include_str!("hello.rs");
        let readme = include_str!("../../../README.md");
        let snippet = between(example, "    // README begin\n", "    // README end\n");
        let snippet: String = snippet
            .lines()
            .map(|l| l.strip_prefix("    ").unwrap_or(l))
            .map(|l| format!("{l}\n"))
            .collect();
        let block = between(readme, "```rust\n", "```\n");
        assert!(
            block.contains(&snippet),
            "README.md's Rust snippet must contain examples/hello.rs's code:\n{snippet}"
        );
    }

    fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
        let from = text.find(start).expect("start marker") + start.len();
        let len = text[from..].find(end).expect("end marker");
        &text[from..from + len]
    }
}
