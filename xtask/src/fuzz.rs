//! `cargo xtask fuzz [--seconds N] [--seeds-only] [TARGET...]`: writes the seed corpus, then runs
//! each cargo-fuzz target in `fuzz/` for N seconds (default 60) and fails on a crash.
//!
//! cargo-fuzz needs `-Z` flags (sanitizer, coverage); on the stable toolchain they are unlocked
//! with `RUSTC_BOOTSTRAP=1`, which this task sets. cargo-fuzz itself is installed from crates.io
//! when missing. The checked-in seeds in `fuzz/corpus/<target>/` are only read; what libFuzzer
//! finds goes to `target/fuzz-corpus/<target>/` (under `$CARGO_TARGET_DIR` if set) and crashes to `fuzz/artifacts/<target>/`
//! (ignored by git; a crash worth keeping is copied to `fuzz/regressions/`).

use crate::{cargo, have, root, run};
use anyhow::{Context, Result, bail};
use roma::{ErrorKind, LogLevel, RomaError};
use roma_core::ExecOutput;
use roma_ipc::{ChildSpec, OversizePolicy, ProbeResult, TransportKind, WorkerToHost};
use roma_udf::{BindingInput, BindingOutput, FunctionBindingIo};
use std::collections::BTreeMap;
use std::path::Path;

/// Every target in `fuzz/Cargo.toml`.
pub const TARGETS: [&str; 5] = [
    "ipc_decode_worker_message",
    "udf_decode_arg",
    "udf_decode_io",
    "ipc_child_spec",
    "ipc_frame_reader",
];

pub fn fuzz(rest: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut seeds_only = false;
    let mut targets = Vec::new();
    let mut args = rest.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .context("--seconds needs a value")?
                    .parse()
                    .context("--seconds takes a whole number")?;
            }
            "--seeds-only" => seeds_only = true,
            t if TARGETS.contains(&t) => targets.push(t),
            other => bail!("unknown fuzz argument `{other}` (targets: {TARGETS:?})"),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    write_seeds(&root().join("fuzz/corpus"))?;
    if seeds_only {
        return Ok(());
    }
    if !have("cargo-fuzz") {
        run(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let fuzz_dir = root().join("fuzz");
    let target_dir = crate::soak::target_dir().join("fuzz");
    let mut failed = Vec::new();
    for t in &targets {
        let scratch = crate::soak::target_dir().join("fuzz-corpus").join(t);
        std::fs::create_dir_all(&scratch)?;
        std::fs::create_dir_all(fuzz_dir.join("artifacts").join(t))?;
        let mut c = cargo();
        c.current_dir(&fuzz_dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .arg("fuzz")
            .arg("run")
            .arg("--target-dir")
            .arg(&target_dir)
            .arg(t)
            .arg(&scratch)
            .arg(fuzz_dir.join("corpus").join(t))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1");
        if let Err(e) = run(&mut c) {
            eprintln!("xtask: fuzz target {t} FAILED: {e:#}");
            failed.push(*t);
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz targets failed: {failed:?}; reproducers are in fuzz/artifacts/<target>/ \
             (replay one with `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>`)"
        );
    }
    eprintln!(
        "xtask: {} fuzz targets ran {seconds} s each without a crash",
        targets.len()
    );
    Ok(())
}

fn put(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("seed-{name}")), bytes)
        .with_context(|| format!("writing seed {name} in {}", dir.display()))
}

fn encode(msg: &WorkerToHost) -> Result<Vec<u8>> {
    Ok(roma_ipc::encode_message(msg)?)
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = u32::try_from(body.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes()
        .to_vec();
    f.extend_from_slice(body);
    f
}

/// Writes the seed corpus: valid encodings made by the real encoders, plus edge cases.
/// Deterministic, so re-running it leaves the checked-in files unchanged.
pub fn write_seeds(corpus: &Path) -> Result<()> {
    let messages = [
        (
            "ready",
            WorkerToHost::Ready {
                pid: 7,
                v8_version: "10.2.154.26".into(),
            },
        ),
        ("loaded-ok", WorkerToHost::Loaded { result: Ok(()) }),
        (
            "loaded-err",
            WorkerToHost::Loaded {
                result: Err(RomaError::new(ErrorKind::Compile, "SyntaxError: x")
                    .with_stack("at <anonymous>:1:1")),
            },
        ),
        (
            "executed-ok",
            WorkerToHost::Executed {
                request_id: 42,
                result: Ok(ExecOutput {
                    resp: r#""Hello world! \"Foobar\"""#.into(),
                    metrics: BTreeMap::from([("roma.execution.code_run_duration_ms".into(), 0.25)]),
                    profiler_output: String::new(),
                }),
            },
        ),
        (
            "executed-err",
            WorkerToHost::Executed {
                request_id: u64::MAX,
                result: Err(RomaError::new(ErrorKind::Timeout, "timed out")),
            },
        ),
        (
            "log",
            WorkerToHost::Log {
                request_id: 1,
                level: LogLevel::Warning,
                message: "console.warn".into(),
            },
        ),
        (
            "binding-call",
            WorkerToHost::BindingCall {
                request_id: 3,
                call_id: 9,
                name: "foo.bar.func1".into(),
                payload: roma_udf::wire::encode_arg(&BindingInput::String("hi".into())),
            },
        ),
        (
            "probe-report",
            WorkerToHost::ProbeReport {
                results: vec![ProbeResult {
                    name: "open_etc_passwd".into(),
                    attempted: "open /etc/passwd".into(),
                    held: true,
                    detail: "ENOENT".into(),
                }],
            },
        ),
    ];
    let dir = corpus.join("ipc_decode_worker_message");
    let frames = corpus.join("ipc_frame_reader");
    let mut stream = Vec::new();
    for (name, msg) in &messages {
        let bytes = encode(msg)?;
        put(&dir, name, &bytes)?;
        put(&frames, name, &frame(&bytes))?;
        stream.extend(frame(&bytes));
    }
    put(&dir, "empty", b"")?;
    put(&dir, "bad-variant", &[0xff])?;
    // A varint length claiming ~4 GiB for the v8_version string.
    put(&dir, "huge-len", &[0, 7, 252, 0xff, 0xff, 0xff, 0xff])?;
    put(&frames, "stream", &stream)?;
    put(&frames, "empty", b"")?;
    put(&frames, "oversize-then-frame", &{
        let mut b = 1000u32.to_le_bytes().to_vec();
        b.extend([0u8; 16]);
        b
    })?;
    put(&frames, "truncated", &[10, 0, 0, 0, 1, 2])?;
    put(&frames, "partial-header", &[1, 0])?;

    let args = [
        ("none", BindingInput::None),
        ("string", BindingInput::String("héllo".into())),
        (
            "list",
            BindingInput::List(vec!["a".into(), String::new(), "ccc".into()]),
        ),
        (
            "map",
            BindingInput::Map(BTreeMap::from([
                ("k1".into(), "v1".into()),
                ("k2".into(), String::new()),
            ])),
        ),
        ("bytes", BindingInput::Bytes(vec![0, 1, 2, 255])),
        ("json", BindingInput::Json(r#"{"a":[1,null,true]}"#.into())),
    ];
    let dir = corpus.join("udf_decode_arg");
    for (name, a) in &args {
        put(&dir, name, &roma_udf::wire::encode_arg(a))?;
    }
    put(&dir, "bad-utf8", &[1, 2, 0, 0, 0, 0xc3, 0x28])?;
    put(&dir, "huge-count", &[2, 0xff, 0xff, 0xff, 0xff])?;
    put(&dir, "unsorted-map", &{
        let mut b = vec![3, 2, 0, 0, 0];
        for s in ["b", "1", "a", "2"] {
            b.extend(1u32.to_le_bytes());
            b.extend(s.as_bytes());
        }
        b
    })?;
    put(&dir, "trailing", &[0, 0])?;
    put(&dir, "unknown-kind", &[9])?;

    let dir = corpus.join("udf_decode_io");
    // The first byte picks the limit (< 16: that many bytes; else 1 MiB).
    for (name, a) in &args {
        let mut io = FunctionBindingIo {
            input: a.clone(),
            ..Default::default()
        };
        io.output = match *name {
            "list" => BindingOutput::List(vec!["x".into()]),
            "map" => BindingOutput::Map(BTreeMap::from([("k".into(), "v".into())])),
            "bytes" => BindingOutput::Bytes(vec![1, 2, 3]),
            "none" => BindingOutput::None,
            _ => BindingOutput::String("out".into()),
        };
        if *name == "json" {
            io.add_error("bad input");
        }
        let mut b = vec![0xff];
        b.extend(roma_udf::encode_io(&io));
        put(&dir, name, &b)?;
    }
    put(&dir, "tiny-limit", &{
        let mut b = vec![2];
        b.extend(roma_udf::encode_io(&FunctionBindingIo::default()));
        b
    })?;
    put(&dir, "huge-len", &[0xff, 1, 252, 0xff, 0xff, 0xff, 0x7f])?;

    let dir = corpus.join("ipc_child_spec");
    let specs = [
        (
            "shm",
            ChildSpec {
                kind: TransportKind::SharedMemory,
                socket: 3,
                control: 4,
                regions: Some((5, 6)),
                region_payload_bytes: 1 << 20,
                max_frame_bytes: 64 << 20,
                oversize: OversizePolicy::SlowPath,
            },
        ),
        (
            "socket",
            ChildSpec {
                kind: TransportKind::Socket,
                socket: 10,
                control: 11,
                regions: None,
                region_payload_bytes: 1 << 20,
                max_frame_bytes: 1024,
                oversize: OversizePolicy::Reject,
            },
        ),
    ];
    for (name, s) in &specs {
        // An even first byte: the target uses the string as is.
        put(&dir, name, s.to_arg().as_bytes())?;
    }
    put(
        &dir,
        "no-prefix",
        b"kind=socket,sock=3,ctl=4,region=1,max=1,oversize=slow",
    )?;
    put(&dir, "repeat-key", b"roma-ipc1:kind=socket,sock=1,sock=2")?;
    put(
        &dir,
        "same-fds",
        b"roma-ipc1:kind=socket,sock=3,ctl=3,region=1,max=1,oversize=slow",
    )?;
    put(
        &dir,
        "huge-sizes",
        b"roma-ipc1:kind=shm,sock=3,ctl=4,h2w=5,w2h=6,region=99999999999999999999,max=4294967296,oversize=slow",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in seeds are what the current encoders produce (re-run
    /// `cargo xtask fuzz --seeds-only` after a wire change), and the valid ones decode.
    #[test]
    fn checked_in_seeds_are_current_and_valid_seeds_decode() {
        let fresh = std::env::temp_dir().join(format!("roma-seeds-{}", std::process::id()));
        write_seeds(&fresh).unwrap();
        let checked_in = root().join("fuzz/corpus");
        let mut n = 0;
        for t in TARGETS {
            for f in std::fs::read_dir(fresh.join(t)).unwrap().flatten() {
                let name = f.file_name();
                let want = std::fs::read(f.path()).unwrap();
                let have = std::fs::read(checked_in.join(t).join(&name))
                    .unwrap_or_else(|_| panic!("fuzz/corpus/{t}/{name:?} is missing"));
                assert_eq!(have, want, "fuzz/corpus/{t}/{name:?} is stale");
                n += 1;
            }
        }
        std::fs::remove_dir_all(&fresh).unwrap();
        assert!(n >= 40, "only {n} seeds");
        for name in ["ready", "executed-ok", "binding-call", "probe-report"] {
            let b = std::fs::read(
                checked_in.join("ipc_decode_worker_message/seed-".to_string() + name),
            )
            .unwrap();
            roma_ipc::decode_worker_message(&b).unwrap();
        }
        for name in ["none", "string", "list", "map", "bytes", "json"] {
            let b =
                std::fs::read(checked_in.join("udf_decode_arg/seed-".to_string() + name)).unwrap();
            roma_udf::wire::decode_arg(&b).unwrap();
        }
        for name in ["shm", "socket"] {
            let s =
                std::fs::read_to_string(checked_in.join("ipc_child_spec/seed-".to_string() + name))
                    .unwrap();
            ChildSpec::parse(&s).unwrap();
        }
    }
}
