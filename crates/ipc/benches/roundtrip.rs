//! IPC round trip between two processes, over both transports: the host sends a payload, an
//! echo process (this same binary, re-executed) sends it back.
//!
//! CPU placement is pinned: the host on CPU 0, the echo process on CPU 1 (the cross-core case,
//! which is how a 2-worker service runs). Sizes 100 B, 10 KB, 1 MB and 10 MB. The shared-memory
//! regions are sized to 16 MiB so every size takes the shared-memory path; with the default 1 MiB
//! regions a 10 MB payload would take the socket (the slow path) instead.

use criterion::{BenchmarkId, Criterion, Throughput};
use roma_ipc::{ChannelConfig, ChildSpec, Transport, WorkerLink, spawn_pair};
use std::process::Command;
use std::time::Duration;

const ECHO_ENV: &str = "ROMA_IPC_BENCH_ECHO";
const SIZES: [usize; 4] = [100, 10 << 10, 1 << 20, 10 << 20];
const WAIT: Duration = Duration::from_secs(30);

fn pin_to(cpu: usize) {
    // SAFETY: the set is a plain bitmask on the stack, initialised by CPU_ZERO/CPU_SET, and
    // sched_setaffinity(0, ..) only changes this thread's placement.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The echo process: sends back every message until the host closes the channel.
fn echo(spec: &str) {
    pin_to(1);
    let spec = ChildSpec::parse(spec).expect("channel spec");
    // SAFETY: the host passed exactly these descriptors to this process for this channel.
    let link = unsafe { WorkerLink::from_inherited_fds(&spec) }.expect("inherited channel");
    let mut t = link.transport;
    let mut buf = Vec::new();
    while t.recv_into(&mut buf, Duration::from_secs(3600)).is_ok() {
        if t.send(&buf).is_err() {
            return;
        }
    }
}

fn config(shm: bool) -> ChannelConfig {
    let mut c = if shm {
        ChannelConfig::shared_memory()
    } else {
        ChannelConfig::socket()
    };
    c.region_payload_bytes = 16 << 20;
    c.max_frame_bytes = 64 << 20;
    c
}

fn bench(c: &mut Criterion) {
    pin_to(0);
    let mut g = c.benchmark_group("ipc_round_trip");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    for (name, shm) in [("socket", false), ("shm", true)] {
        let (link, handoff) = spawn_pair(&config(shm)).expect("channel");
        let mut cmd = Command::new(std::env::current_exe().expect("bench binary"));
        cmd.env(ECHO_ENV, handoff.arg());
        let mut child = handoff.spawn(&mut cmd).expect("echo process");
        let mut t = link.transport;
        let mut back = Vec::new();
        for size in SIZES {
            let payload = vec![0x5a_u8; size];
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_with_input(BenchmarkId::new(name, size), &payload, |b, p| {
                b.iter(|| {
                    t.send(p).expect("send");
                    t.recv_into(&mut back, WAIT).expect("echo");
                    assert_eq!(back.len(), p.len());
                })
            });
        }
        drop(t);
        let _ = child.wait();
    }
    g.finish();
}

fn main() {
    if let Ok(spec) = std::env::var(ECHO_ENV) {
        echo(&spec);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
