//! `cargo xtask docs-check`: runs every command that README.md, examples/README.md and docs/
//! mark runnable, so the docs cannot drift from the code.
//!
//! A fenced block is runnable when its info string has the word `runnable`:
//!
//! - ```` ```sh runnable ````: each line is a command (a trailing `# comment` is dropped); each
//!   must exit 0. For commands whose output varies (timings, the machine).
//! - ```` ```console runnable ````: lines starting with `$ ` are commands; the lines after one,
//!   up to the next, are what it prints: its stderr, then its stdout, compared exactly. For
//!   commands with a fixed answer, failures included.
//!
//! Commands run with `sh -c` from the repository root, with `target/debug` first on `PATH`, so
//! `roma` is the debug build of the checkout (`cargo xtask test` builds it first).

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// One command a doc marks runnable.
#[derive(Debug, PartialEq, Eq)]
pub struct Runnable {
    /// The file and line it is on, for the report.
    pub place: String,
    pub command: String,
    /// What it must print (stderr, then stdout); `None`: it must exit 0, output unchecked.
    pub expected: Option<String>,
}

/// The runnable commands of one markdown text.
pub fn runnables(file: &str, text: &str) -> Vec<Runnable> {
    let mut found = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((_, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let words: Vec<&str> = info.split_whitespace().collect();
        let runnable = words.contains(&"runnable");
        let console = words.first() == Some(&"console");
        let mut current: Option<Runnable> = None;
        for (n, line) in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            if !runnable {
                continue;
            }
            let place = format!("{file}:{}", n + 1);
            if console {
                if let Some(cmd) = line.strip_prefix("$ ") {
                    found.extend(current.take());
                    current = Some(Runnable {
                        place,
                        command: cmd.to_owned(),
                        expected: Some(String::new()),
                    });
                } else if let Some(Runnable {
                    expected: Some(out),
                    ..
                }) = current.as_mut()
                {
                    out.push_str(line);
                    out.push('\n');
                }
            } else {
                let command = line.split(" #").next().unwrap_or("").trim();
                if !command.is_empty() && !command.starts_with('#') {
                    found.push(Runnable {
                        place,
                        command: command.to_owned(),
                        expected: None,
                    });
                }
            }
        }
        found.extend(current.take());
    }
    found
}

/// The markdown files checked: README.md, examples/README.md and every docs/*.md.
fn doc_files(root: &Path) -> Result<Vec<String>> {
    let mut files = vec!["README.md".to_owned(), "examples/README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .context("cannot list docs/")?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    files.extend(docs);
    Ok(files)
}

/// Runs every runnable command of the docs; fails naming each one that drifted.
pub fn check(root: &Path) -> Result<()> {
    let path = format!(
        "{}:{}",
        root.join("target/debug").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut failures = Vec::new();
    let mut count = 0;
    for file in doc_files(root)? {
        let text = std::fs::read_to_string(root.join(&file))
            .with_context(|| format!("cannot read {file}"))?;
        for r in runnables(&file, &text) {
            count += 1;
            eprintln!("xtask: docs-check {}: {}", r.place, r.command);
            let out = Command::new("sh")
                .args(["-c", &r.command])
                .current_dir(root)
                .env("PATH", &path)
                .output()
                .with_context(|| format!("cannot run {}", r.command))?;
            let printed = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
            match &r.expected {
                None if !out.status.success() => failures.push(format!(
                    "{}: `{}` failed with {}:\n{printed}",
                    r.place, r.command, out.status
                )),
                Some(expected) if *expected != printed => failures.push(format!(
                    "{}: `{}` printed\n{printed}but the doc shows\n{expected}",
                    r.place, r.command
                )),
                _ => {}
            }
        }
    }
    if count == 0 {
        bail!("no runnable command found in the docs");
    }
    if !failures.is_empty() {
        bail!(
            "{} of {count} documented commands drifted:\n\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    eprintln!("xtask: docs-check: all {count} documented commands behave as shown");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_blocks_marked_runnable_are_taken() {
        let text = "\
```sh
not run
```
```sh runnable
roma run a.js   # one call

# a comment
roma check
```
```console runnable
$ roma run a.js
out 1
out 2
$ roma run b.js
```
";
        let found = runnables("X.md", text);
        assert_eq!(
            found,
            vec![
                Runnable {
                    place: "X.md:5".into(),
                    command: "roma run a.js".into(),
                    expected: None
                },
                Runnable {
                    place: "X.md:8".into(),
                    command: "roma check".into(),
                    expected: None
                },
                Runnable {
                    place: "X.md:11".into(),
                    command: "roma run a.js".into(),
                    expected: Some("out 1\nout 2\n".into())
                },
                Runnable {
                    place: "X.md:14".into(),
                    command: "roma run b.js".into(),
                    expected: Some(String::new())
                },
            ]
        );
    }

    #[test]
    fn the_docs_have_runnable_commands() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut total = 0;
        for file in doc_files(&root).unwrap() {
            let text = std::fs::read_to_string(root.join(&file)).unwrap();
            total += runnables(&file, &text).len();
        }
        assert!(total >= 5, "only {total} runnable commands in the docs");
    }
}
