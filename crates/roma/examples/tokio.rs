//! roma's futures under tokio: load once, then run many requests concurrently from one task,
//! each awaited without blocking the runtime's thread. roma's futures need no particular
//! executor (a roma thread completes them and wakes the task that polled them); tokio is only
//! the example's choice.
//!
//! ```sh
//! cargo build -p roma-worker && cargo run -p roma --example tokio
//! ```

use roma::{CodeObject, Config, InvocationRequest, RomaError, RomaService};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), RomaError> {
    for line in greet_all(&["ada", "grace", "edsger"]).await? {
        println!("{line}");
    }
    Ok(())
}

/// Greets each name through the service, all requests in flight at once, answers in order.
async fn greet_all(names: &[&str]) -> Result<Vec<String>, RomaError> {
    let js = r#"function Greet(name) { return "Hello, " + name + "!"; }"#;
    let mut config = Config::default();
    config.number_of_workers(2);
    let roma = RomaService::new(config)?;
    roma.load_code_obj_async(CodeObject::js("v1", js)).await?;
    // Submitted now, awaited below: the requests run while this task waits on the first.
    let pending: Vec<_> = names
        .iter()
        .map(|name| {
            let input = vec![serde_json::to_string(name).unwrap_or_default()];
            roma.execute_async(InvocationRequest::new("v1", "Greet", input))
        })
        .collect();
    let mut answers = Vec::with_capacity(pending.len());
    for future in pending {
        answers.push(future.await?.resp);
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    /// `cargo test -p roma` runs the example under a real tokio runtime.
    #[test]
    fn the_example_runs() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let answers = runtime
            .block_on(super::greet_all(&["ada", "grace", "edsger"]))
            .unwrap();
        assert_eq!(
            answers,
            [
                r#""Hello, ada!""#,
                r#""Hello, grace!""#,
                r#""Hello, edsger!""#
            ]
        );
    }
}
