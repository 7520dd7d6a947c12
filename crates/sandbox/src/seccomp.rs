//! The worker's seccomp-bpf allow-list, installed by the worker after V8 has initialised.
//!
//! V8 starts its platform threads during initialisation, and the filter must cover them, so it
//! is installed with `SECCOMP_FILTER_FLAG_TSYNC` (seccompiler's `apply_filter_all_threads`),
//! which also sets `no_new_privs`. Five filters are stacked; for each call the kernel applies
//! the most restrictive answer of all of them (trap > errno > allow):
//!
//! 1. `clone3` fails with `ENOSYS`, so glibc falls back to `clone`, whose flags a filter can
//!    inspect (clone3 passes them in memory);
//! 2. path look-ups (`openat`, `newfstatat`, `readlink`, `access`, ...) fail with `EACCES`: V8,
//!    ICU and glibc probe files lazily (ICU data, `/proc/sys/vm/overcommit_memory`) and cope
//!    with a refusal, and the jail has no files to find anyway;
//! 3. `socket` and `connect` fail with `EPERM`, so a stray network call by libnode fails
//!    softly (the jail's network namespace is empty anyway);
//! 4. `madvise` with advice outside [`ARG_RULES_ERRNO`] fails with `EPERM` (advice is a hint:
//!    a library asking for one the jail refuses copes with a refusal);
//! 5. the allow-list: [`ALLOWED`] unconditionally, and the calls of [`ARG_RULES`] only in the
//!    forms listed there (threads-only `clone`, signals to itself, futex operations without
//!    priority inheritance, `mmap`/`mprotect` flags, `fcntl` commands, ...). Anything else is
//!    trapped ([`FilterMode::KillProcess`]): the kernel sends `SIGSYS`, whose handler (see
//!    `violation`) reports the call's number to the host and lets the process die of `SIGSYS`.
//!    In [`FilterMode::Probe`], which only `roma check` uses, it fails with `EPERM` instead.
//!
//! Not allowed, among others: `execve`/`execveat`, `fork`/`vfork` and `clone` without
//! `CLONE_THREAD`, `ptrace`, `mount`/`fsopen`, `bpf`, `unshare`, `setns`,
//! `process_vm_readv/writev`, signals to other processes, `ioctl`, `io_uring_*`,
//! `memfd_create`, `userfaultfd`, `perf_event_open`, `seccomp`, `setuid` and friends, `bind`,
//! `listen`, `accept`, `sendmsg` (the only call that could pass a descriptor to the host: the
//! channel never passes one, and sends with `sendto`), `futex` priority-inheritance operations
//! (`FUTEX_LOCK_PI` and friends, a long record of kernel bugs), `madvise(MADV_REMOVE)` (which
//! would zero the shared channel memory), `MADV_MERGEABLE`, `MADV_PAGEOUT`, `fcntl(F_SETOWN)`,
//! `fcntl(F_SETPIPE_SZ)`, `mmap(MAP_HUGETLB | MAP_POPULATE | MAP_GROWSDOWN | MAP_LOCKED)`,
//! `PROT_GROWSDOWN`, and replacing the `SIGSYS` handler.
//!
//! The JIT needs `PROT_EXEC`: V8 writes machine code and then maps it executable, so `mmap`,
//! `mprotect` and `pkey_mprotect` may ask for `PROT_READ | PROT_WRITE | PROT_EXEC` in any
//! combination (no other protection bit). That is no loss: the threat model already assumes
//! native code running in the worker; the jail is what holds it.
//!
//! Some of V8's paths depend on the CPU or the kernel, and each is on the list so that no machine
//! kills a worker another machine lets live: memory protection keys (`pkey_alloc`, `pkey_mprotect`,
//! `pkey_free`) are used only where the CPU has PKU (Intel since Skylake-SP, AMD since Zen 3), and
//! lazily, at the first WebAssembly compile, long after the filter is installed; `MADV_FREE` falls
//! back to `MADV_DONTNEED` on old kernels; glibc's `clone3` falls back to `clone`. The sandbox
//! tests make each of these calls under the installed filter on every machine (a CPU without PKU
//! answers `pkey_alloc` with an errno, but the filter still decides first).
//!
//! V8 10.2 (libnode 18) was measured (notes §4: JS, GC, JSON, WebAssembly, Intl, a 64 MiB
//! ArrayBuffer, run after a post-init filter with default KILL) to need exactly: read, write,
//! close, mmap, munmap, mprotect, madvise, mremap, brk, futex, sched_yield, clock_gettime,
//! clock_nanosleep, nanosleep, getpid, gettid, rt_sigreturn, rt_sigprocmask, sigaltstack, exit,
//! exit_group, getrandom, recvmsg, sendmsg, poll, ppoll (sendmsg is no longer allowed: roma's
//! channel sends with sendto, and the whole test suite runs without it); with openat, newfstatat,
//! readlink, readlinkat, statx and access answered `EACCES` (without that, `Context::New` is killed
//! on `newfstatat`). Its steady state is mprotect, munmap, futex, madvise, mmap and brk. The rest
//! of [`ALLOWED`] is for the Rust side: threads started after the filter (clone with thread flags,
//! set_robust_list, rseq, sched_getaffinity, prlimit64, prctl(PR_SET_NAME)), and the socket and
//! shared-memory channel (recvfrom/sendto, fcntl, fstat, getcpu, epoll).
//!
//! V8 14.6 (Node 26.12.1, in `node` carrying the worker library) was re-derived the same way:
//! strace of jailed workers running hello world, JS with WASM, standalone WASM, timeouts, Intl,
//! async handlers and host functions. Past the filter it made no call outside [`ALLOWED`]; it
//! opens `/proc/self/maps` (glibc's main-thread stack query), answered `EACCES` like the other
//! file calls. It would also open `/dev/urandom` for its entropy, which roma-v8 avoids by giving
//! V8 a `getrandom` source.

use crate::{SandboxError, violation};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// System calls allowed unconditionally, each with why a worker needs it.
pub const ALLOWED: &[(i64, &str)] = &[
    (libc::SYS_read, "channel and pipe reads"),
    (libc::SYS_write, "channel writes, stderr logging"),
    (libc::SYS_readv, "vectored channel reads"),
    (libc::SYS_writev, "vectored channel writes"),
    (libc::SYS_pread64, "shared-memory channel (memfd) reads"),
    (libc::SYS_pwrite64, "shared-memory channel (memfd) writes"),
    (libc::SYS_close, "closing descriptors the worker owns"),
    (
        libc::SYS_fstat,
        "metadata of an already-open descriptor (stdio buffering)",
    ),
    (libc::SYS_munmap, "V8 heap and malloc release"),
    (
        libc::SYS_madvise,
        "V8 and malloc returning pages (MADV_DONTNEED/FREE); advice limited by ARG_RULES_ERRNO",
    ),
    (
        libc::SYS_pkey_alloc,
        "V8 allocates its protection key lazily, at the first WebAssembly compile",
    ),
    (
        libc::SYS_pkey_free,
        "V8 frees a key it allocated (its PKU support test)",
    ),
    (libc::SYS_mremap, "realloc of large blocks"),
    (libc::SYS_brk, "malloc's main arena"),
    (libc::SYS_sched_yield, "V8 spin-then-yield locks"),
    (
        libc::SYS_sched_getaffinity,
        "thread-pool sizing (available_parallelism)",
    ),
    (
        libc::SYS_clock_gettime,
        "Date.now, performance.now, timeouts",
    ),
    (libc::SYS_clock_getres, "timer resolution queries"),
    (libc::SYS_gettimeofday, "legacy time source"),
    (
        libc::SYS_clock_nanosleep,
        "sleeps in the platform and Rust std",
    ),
    (libc::SYS_nanosleep, "sleeps"),
    (libc::SYS_getpid, "V8 and logging"),
    (libc::SYS_gettid, "V8 thread ids"),
    (libc::SYS_getppid, "harmless identity query"),
    (libc::SYS_getuid, "harmless identity query"),
    (libc::SYS_geteuid, "harmless identity query"),
    (libc::SYS_getgid, "harmless identity query"),
    (libc::SYS_getegid, "harmless identity query"),
    (libc::SYS_rt_sigreturn, "returning from signal handlers"),
    (
        libc::SYS_rt_sigprocmask,
        "signal masks around thread creation and in glibc",
    ),
    (
        libc::SYS_sigaltstack,
        "alternate signal stacks for new threads",
    ),
    (libc::SYS_exit, "thread exit"),
    (libc::SYS_exit_group, "process exit"),
    (libc::SYS_restart_syscall, "restarting an interrupted sleep"),
    (
        libc::SYS_getrandom,
        "Math.random seeding, hash seeds, crypto.getRandomValues",
    ),
    (
        libc::SYS_recvmsg,
        "channel reads (only the host sends on the channel, and it passes no descriptors)",
    ),
    (libc::SYS_recvfrom, "channel reads on the inherited socket"),
    (libc::SYS_sendto, "channel writes on the inherited socket"),
    (libc::SYS_shutdown, "half-closing the channel"),
    (libc::SYS_poll, "waiting on the channel"),
    (libc::SYS_ppoll, "waiting on the channel"),
    (
        libc::SYS_epoll_create1,
        "an event loop over the existing descriptors",
    ),
    (
        libc::SYS_epoll_ctl,
        "an event loop over the existing descriptors",
    ),
    (
        libc::SYS_epoll_wait,
        "an event loop over the existing descriptors",
    ),
    (
        libc::SYS_epoll_pwait,
        "an event loop over the existing descriptors",
    ),
    (libc::SYS_set_robust_list, "new threads (glibc)"),
    (libc::SYS_rseq, "new threads (glibc restartable sequences)"),
    (libc::SYS_getrlimit, "stack size queries (glibc pthread)"),
    (
        libc::SYS_getrusage,
        "V8's CPU-time and peak-memory queries (OS::GetUserTime, GC tracing)",
    ),
    (
        libc::SYS_sysinfo,
        "glibc's sysconf(_SC_PHYS_PAGES), which V8 reads to size a new isolate's heap",
    ),
    (
        libc::SYS_sched_getparam,
        "pthread scheduling queries when V8 starts a platform thread",
    ),
    (
        libc::SYS_sched_getscheduler,
        "pthread scheduling queries when V8 starts a platform thread",
    ),
    (
        libc::SYS_getcpu,
        "CPU placement for the IPC spin decision (rustix sched_getcpu)",
    ),
];

/// System calls answered with `EACCES`: path look-ups that V8, ICU and glibc attempt lazily.
pub const DENIED_WITH_EACCES: &[i64] = &[
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
];

/// System calls answered with `EPERM`: network access a library might try (none is reachable
/// in the jail's empty network namespace anyway). Failing softly keeps a stray call by libnode
/// from killing the worker, while still giving it nothing.
pub const DENIED_WITH_EPERM: &[i64] = &[libc::SYS_socket, libc::SYS_connect];

/// Namespace-creating `clone` flags, never allowed.
const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;

/// The protection bits V8 asks for: reserved (`PROT_NONE`), data (read/write) and JIT code
/// (`PROT_EXEC`; V8 writes machine code, then makes it executable). Not `PROT_GROWSDOWN/UP`.
const PROT_ALLOWED: u64 = (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64;

/// The `mmap` flags V8, glibc (malloc arenas, `MAP_STACK` thread stacks) and the shared-memory
/// channel (`MAP_SHARED`) use. Not `MAP_HUGETLB`, `MAP_POPULATE`, `MAP_GROWSDOWN`, `MAP_LOCKED`,
/// `MAP_32BIT`, `MAP_SYNC`, `MAP_UNINITIALIZED`.
const MAP_ALLOWED: u64 = (libc::MAP_SHARED
    | libc::MAP_PRIVATE
    | libc::MAP_FIXED
    | libc::MAP_FIXED_NOREPLACE
    | libc::MAP_ANONYMOUS
    | libc::MAP_NORESERVE
    | libc::MAP_STACK) as u64;

/// The mapping-type bits of `mmap`'s flags: exactly one of `MAP_SHARED` or `MAP_PRIVATE`, so not
/// `MAP_SHARED_VALIDATE` (both bits), which would let the kernel accept more flags.
const MAP_TYPE: u64 = 0x3;

/// The futex flags allowed on top of an operation.
const FUTEX_FLAGS: u64 = (libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME) as u64;

/// The kernel's `O_LARGEFILE` on x86-64 (glibc's header defines it as 0 there): `F_GETFL`
/// reports it for every pipe, socket and memfd, so `F_SETFL` of what `F_GETFL` said carries it.
const O_LARGEFILE_KERNEL: u64 = 0o100000;

/// The file status flags `F_SETFL` may set: non-blocking mode and what `F_GETFL` reports back
/// (access mode, append, large-file). Not `O_ASYNC` (signals to an owner), `O_DIRECT`,
/// `O_NOATIME`.
const SETFL_ALLOWED: u64 =
    (libc::O_ACCMODE | libc::O_APPEND | libc::O_NONBLOCK) as u64 | O_LARGEFILE_KERNEL;

/// How much of an argument a check compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// The low 32 bits: an `int` argument, which the kernel truncates to them too.
    Int,
    /// All 64 bits: an `unsigned long` argument the kernel reads whole.
    Long,
}

/// What an argument's masked value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// One of these values.
    OneOf(&'static [u64]),
    /// None of these values.
    NoneOf(&'static [u64]),
    /// The worker's own pid (as it sees it).
    OwnPid,
}

/// One check of one argument: `args[arg] & mask` must meet `expect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgCheck {
    /// The argument's index (0..=5).
    pub arg: u8,
    /// How much of it is compared.
    pub width: Width,
    /// The bits compared (`u64::MAX`: the whole value).
    pub mask: u64,
    /// What they must be.
    pub expect: Expect,
}

const fn is(arg: u8, width: Width, values: &'static [u64]) -> ArgCheck {
    ArgCheck {
        arg,
        width,
        mask: u64::MAX,
        expect: Expect::OneOf(values),
    }
}

const fn is_not(arg: u8, width: Width, values: &'static [u64]) -> ArgCheck {
    ArgCheck {
        arg,
        width,
        mask: u64::MAX,
        expect: Expect::NoneOf(values),
    }
}

/// Only bits of `allowed` may be set.
const fn only_bits(arg: u8, width: Width, allowed: u64) -> ArgCheck {
    ArgCheck {
        arg,
        width,
        mask: !allowed,
        expect: Expect::OneOf(&[0]),
    }
}

const fn masked_is(arg: u8, width: Width, mask: u64, values: &'static [u64]) -> ArgCheck {
    ArgCheck {
        arg,
        width,
        mask,
        expect: Expect::OneOf(values),
    }
}

/// One allowed form of a system call: every check holds. A listed call that matches none of its
/// forms is refused like an unlisted one (`SIGSYS`, named to the host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgRule {
    /// The system call.
    pub syscall: i64,
    /// Checks that must all hold.
    pub checks: &'static [ArgCheck],
    /// Why the worker needs this form.
    pub why: &'static str,
}

/// System calls allowed only in these forms (several rows for one call: any of them).
pub const ARG_RULES: &[ArgRule] = &[
    ArgRule {
        syscall: libc::SYS_clone,
        // CLONE_THREAD set and no namespace flag: fork is clone without CLONE_THREAD.
        checks: &[masked_is(
            0,
            Width::Long,
            CLONE_NAMESPACE_FLAGS | libc::CLONE_THREAD as u64,
            &[libc::CLONE_THREAD as u64],
        )],
        why: "threads started after the filter (glibc falls back from clone3)",
    },
    ArgRule {
        syscall: libc::SYS_tgkill,
        checks: &[ArgCheck {
            arg: 0,
            width: Width::Int,
            mask: u64::MAX,
            expect: Expect::OwnPid,
        }],
        why: "signals to its own threads (abort raises SIGABRT with tgkill)",
    },
    ArgRule {
        syscall: libc::SYS_kill,
        checks: &[ArgCheck {
            arg: 0,
            width: Width::Int,
            mask: u64::MAX,
            expect: Expect::OwnPid,
        }],
        why: "signals to itself",
    },
    ArgRule {
        syscall: libc::SYS_prlimit64,
        // pid 0 (itself) and no new limit: reading, never setting.
        checks: &[is(0, Width::Int, &[0]), is(2, Width::Long, &[0])],
        why: "stack size queries (glibc pthread)",
    },
    ArgRule {
        syscall: libc::SYS_prctl,
        checks: &[is(
            0,
            Width::Int,
            &[libc::PR_SET_NAME as u64, libc::PR_GET_NAME as u64],
        )],
        why: "thread names (Rust's thread::Builder::name, V8's platform threads)",
    },
    ArgRule {
        syscall: libc::SYS_rt_sigaction,
        checks: &[is_not(0, Width::Int, &[libc::SIGSYS as u64])],
        why: "installing handlers (Rust's stack-overflow handler, V8's WebAssembly trap handler); \
              never for SIGSYS, whose handler names a refused call to the host",
    },
    ArgRule {
        syscall: libc::SYS_rt_sigaction,
        checks: &[
            is(0, Width::Int, &[libc::SIGSYS as u64]),
            is(1, Width::Long, &[0]),
        ],
        why: "reading the SIGSYS action (no new action)",
    },
    ArgRule {
        syscall: libc::SYS_futex,
        // Chromium's renderer allows the same operations: no priority inheritance (LOCK_PI,
        // UNLOCK_PI, TRYLOCK_PI, WAIT_REQUEUE_PI, CMP_REQUEUE_PI, LOCK_PI2).
        checks: &[masked_is(
            1,
            Width::Int,
            !FUTEX_FLAGS,
            &[
                libc::FUTEX_WAIT as u64,
                libc::FUTEX_WAKE as u64,
                libc::FUTEX_REQUEUE as u64,
                libc::FUTEX_CMP_REQUEUE as u64,
                libc::FUTEX_WAKE_OP as u64,
                libc::FUTEX_WAIT_BITSET as u64,
                libc::FUTEX_WAKE_BITSET as u64,
            ],
        )],
        why: "mutexes and condition variables (V8 platform threads, glibc, Rust std), the \
              shared-memory channel's doorbell",
    },
    ArgRule {
        syscall: libc::SYS_mmap,
        checks: &[
            only_bits(2, Width::Long, PROT_ALLOWED),
            masked_is(
                3,
                Width::Long,
                MAP_TYPE,
                &[libc::MAP_SHARED as u64, libc::MAP_PRIVATE as u64],
            ),
            only_bits(3, Width::Long, MAP_ALLOWED),
        ],
        why: "V8 heap and code space (PROT_EXEC for the JIT), thread stacks, malloc",
    },
    ArgRule {
        syscall: libc::SYS_mprotect,
        checks: &[only_bits(2, Width::Long, PROT_ALLOWED)],
        why: "V8's W^X code space toggling, guard pages",
    },
    ArgRule {
        syscall: libc::SYS_pkey_mprotect,
        checks: &[only_bits(2, Width::Long, PROT_ALLOWED)],
        why: "V8's write protection of WebAssembly code with memory protection keys (CPUs with \
              PKU); the same protection bits as mprotect",
    },
    ArgRule {
        syscall: libc::SYS_fcntl,
        checks: &[is(
            1,
            Width::Int,
            &[
                libc::F_GETFD as u64,
                libc::F_SETFD as u64,
                libc::F_GETFL as u64,
                libc::F_DUPFD as u64,
                libc::F_DUPFD_CLOEXEC as u64,
            ],
        )],
        why: "descriptor flags and duplicates of already-open descriptors",
    },
    ArgRule {
        syscall: libc::SYS_fcntl,
        checks: &[
            is(1, Width::Int, &[libc::F_SETFL as u64]),
            only_bits(2, Width::Int, SETFL_ALLOWED),
        ],
        why: "non-blocking mode on already-open descriptors",
    },
];

/// An argument rule whose refusal is an errno rather than `SIGSYS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftArgRule {
    /// The system call (also on [`ALLOWED`]: this rule narrows it).
    pub syscall: i64,
    /// The argument checked (compared as an `int`).
    pub arg: u8,
    /// The values allowed; any other fails with `errno`.
    pub allowed: &'static [u64],
    /// The errno of a refusal.
    pub errno: i32,
    /// Why these values.
    pub why: &'static str,
}

/// Argument rules answered with an errno: `madvise` advice is a hint, and V8 and glibc cope
/// with a refused one, so a library asking for advice the jail does not grant fails softly.
pub const ARG_RULES_ERRNO: &[SoftArgRule] = &[SoftArgRule {
    syscall: libc::SYS_madvise,
    arg: 2,
    allowed: &[
        libc::MADV_NORMAL as u64,
        libc::MADV_RANDOM as u64,
        libc::MADV_SEQUENTIAL as u64,
        libc::MADV_WILLNEED as u64,
        libc::MADV_DONTNEED as u64,
        libc::MADV_FREE as u64,
        libc::MADV_DONTDUMP as u64,
        libc::MADV_DODUMP as u64,
        libc::MADV_HUGEPAGE as u64,
        libc::MADV_NOHUGEPAGE as u64,
        // V8's heap pages get MADV_DONTFORK (over a hundred calls in a GC-heavy request); the
        // worker cannot fork anyway.
        libc::MADV_DONTFORK as u64,
        libc::MADV_DOFORK as u64,
    ],
    errno: libc::EPERM,
    why: "V8 and malloc return pages (MADV_FREE, falling back to MADV_DONTNEED on old kernels), \
          V8 marks heap pages MADV_DONTFORK, and access hints; not MADV_REMOVE (it would zero the shared channel memory), \
          MADV_MERGEABLE, MADV_PAGEOUT/COLD, MADV_HWPOISON, MADV_WIPEONFORK, MADV_POPULATE_*",
}];

/// What the allow-list does with a system call it does not list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterMode {
    /// Trap it: `SIGSYS`, whose handler reports the call to the host and lets the process die
    /// of `SIGSYS` (production).
    KillProcess,
    /// Fail the call with `EPERM` and carry on (for [`crate::probe`], which must survive its
    /// attempts to report them).
    Probe,
}

fn cond(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, SandboxError> {
    SeccompCondition::new(arg, len, op, value).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, SandboxError> {
    SeccompRule::new(conds).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, SandboxError> {
    let filter = SeccompFilter::new(rules, mismatch, matched, TargetArch::x86_64)
        .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

fn seccomp_len(width: Width) -> SeccompCmpArgLen {
    match width {
        Width::Int => SeccompCmpArgLen::Dword,
        Width::Long => SeccompCmpArgLen::Qword,
    }
}

/// The alternatives one check allows, each a list of conditions that must all hold: one
/// alternative per value for [`Expect::OneOf`], a single one of "not equal"s for
/// [`Expect::NoneOf`].
fn check_alternatives(
    check: &ArgCheck,
    pid: u32,
) -> Result<Vec<Vec<SeccompCondition>>, SandboxError> {
    let mask = match check.width {
        Width::Int => check.mask & u64::from(u32::MAX),
        Width::Long => check.mask,
    };
    let whole = match check.width {
        Width::Int => mask == u64::from(u32::MAX),
        Width::Long => mask == u64::MAX,
    };
    let eq = |value: u64| {
        let op = if whole {
            SeccompCmpOp::Eq
        } else {
            SeccompCmpOp::MaskedEq(mask)
        };
        cond(check.arg, seccomp_len(check.width), op, value)
    };
    match check.expect {
        Expect::OneOf(values) => values.iter().map(|&v| eq(v).map(|c| vec![c])).collect(),
        Expect::OwnPid => Ok(vec![vec![eq(u64::from(pid))?]]),
        Expect::NoneOf(_) if !whole => Err(SandboxError::Seccomp(
            "a NoneOf check cannot be masked".into(),
        )),
        Expect::NoneOf(values) => Ok(vec![
            values
                .iter()
                .map(|&v| cond(check.arg, seccomp_len(check.width), SeccompCmpOp::Ne, v))
                .collect::<Result<_, _>>()?,
        ]),
    }
}

/// The seccompiler rules (any of them) for one allowed form (all of its checks): the product
/// of each check's alternatives.
fn form_rules(form: &ArgRule, pid: u32) -> Result<Vec<SeccompRule>, SandboxError> {
    let mut products: Vec<Vec<SeccompCondition>> = vec![Vec::new()];
    for check in form.checks {
        let alternatives = check_alternatives(check, pid)?;
        let mut next = Vec::with_capacity(products.len() * alternatives.len());
        for p in &products {
            for a in &alternatives {
                next.push(p.iter().chain(a).cloned().collect());
            }
        }
        products = next;
    }
    products.into_iter().map(rule).collect()
}

/// The allow-list filter. `pid` is the worker's own pid (as it sees it): signals may only be
/// sent to it.
fn allow_list(mode: FilterMode, pid: u32) -> Result<BpfProgram, SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &(nr, _) in ALLOWED {
        rules.insert(nr, Vec::new());
    }
    // Let the errno filters answer these.
    for &nr in DENIED_WITH_EACCES.iter().chain(DENIED_WITH_EPERM) {
        rules.insert(nr, Vec::new());
    }
    rules.insert(libc::SYS_clone3, Vec::new());
    for form in ARG_RULES {
        let mut more = form_rules(form, pid)?;
        rules.entry(form.syscall).or_default().append(&mut more);
    }
    let mismatch = match mode {
        FilterMode::KillProcess => SeccompAction::Trap,
        FilterMode::Probe => SeccompAction::Errno(libc::EPERM as u32),
    };
    compile(rules, mismatch, SeccompAction::Allow)
}

fn errno_filter(syscalls: &[i64], errno: i32) -> Result<BpfProgram, SandboxError> {
    let rules = syscalls.iter().map(|&nr| (nr, Vec::new())).collect();
    compile(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
    )
}

/// The filter answering a [`SoftArgRule`]'s refused values with its errno.
fn soft_arg_filter(soft: &SoftArgRule) -> Result<BpfProgram, SandboxError> {
    let refused: Vec<SeccompCondition> = soft
        .allowed
        .iter()
        .map(|&v| cond(soft.arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, v))
        .collect::<Result<_, _>>()?;
    let rules = BTreeMap::from([(soft.syscall, vec![rule(refused)?])]);
    compile(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(soft.errno as u32),
    )
}

/// The filters in installation order (the allow-list last, since it forbids `seccomp` itself).
pub fn worker_filters(mode: FilterMode, pid: u32) -> Result<Vec<BpfProgram>, SandboxError> {
    let mut filters = vec![
        errno_filter(&[libc::SYS_clone3], libc::ENOSYS)?,
        errno_filter(DENIED_WITH_EACCES, libc::EACCES)?,
        errno_filter(DENIED_WITH_EPERM, libc::EPERM)?,
    ];
    for soft in ARG_RULES_ERRNO {
        filters.push(soft_arg_filter(soft)?);
    }
    filters.push(allow_list(mode, pid)?);
    Ok(filters)
}

fn install(mode: FilterMode) -> Result<(), SandboxError> {
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    let filters = worker_filters(mode, pid)?;
    // Before the filter, which refuses to change the SIGSYS action afterwards.
    violation::install_handler(crate::current_jail().and_then(|j| j.violation_fd))?;
    for program in filters {
        // TSYNC: V8's platform threads already exist and must be filtered too.
        seccompiler::apply_filter_all_threads(&program)
            .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    }
    Ok(())
}

/// Installs the worker's filter on every thread of the process: a forbidden system call kills
/// the process with `SIGSYS`, after its handler named the call to the host (on the violation
/// pipe the host passed, if any). Sets `no_new_privs`. Irreversible.
///
/// Call it after V8 initialisation (platform, isolate) and before the first untrusted code runs.
pub fn install_worker_filter() -> Result<(), SandboxError> {
    install(FilterMode::KillProcess)
}

/// The same filter, but a forbidden system call fails with `EPERM` instead of killing: for
/// [`crate::probe::run_probes`], which reports what is blocked rather than dying on the first
/// attempt. Never use it to run untrusted code.
pub fn install_worker_filter_for_probe() -> Result<(), SandboxError> {
    install(FilterMode::Probe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn filters_compile_in_both_modes() {
        for mode in [FilterMode::KillProcess, FilterMode::Probe] {
            let f = worker_filters(mode, 1).unwrap();
            assert_eq!(f.len(), 4 + ARG_RULES_ERRNO.len());
            assert!(f.iter().all(|p| !p.is_empty() && p.len() < 4096));
        }
    }

    #[test]
    fn dangerous_calls_are_not_on_the_list() {
        let allowed: HashSet<i64> = ALLOWED.iter().map(|&(nr, _)| nr).collect();
        assert_eq!(allowed.len(), ALLOWED.len(), "duplicate entry");
        for nr in [
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_bind,
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_fork,
            libc::SYS_vfork,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_ptrace,
            libc::SYS_mount,
            libc::SYS_bpf,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
            libc::SYS_kill,
            libc::SYS_tgkill,
            libc::SYS_ioctl,
            libc::SYS_io_uring_setup,
            libc::SYS_memfd_create,
            libc::SYS_userfaultfd,
            libc::SYS_perf_event_open,
            libc::SYS_prctl,
            libc::SYS_seccomp,
            libc::SYS_openat,
            libc::SYS_sendmsg,
            libc::SYS_sendmmsg,
            libc::SYS_futex,
            libc::SYS_mmap,
            libc::SYS_mprotect,
            libc::SYS_pkey_mprotect,
            libc::SYS_fcntl,
            libc::SYS_rt_sigaction,
        ] {
            assert!(
                !allowed.contains(&nr),
                "syscall {nr} must not be allowed unconditionally"
            );
        }
        for (nr, why) in ALLOWED {
            assert!(!why.is_empty(), "syscall {nr} has no reason");
            assert!(!DENIED_WITH_EACCES.contains(nr));
            assert!(!DENIED_WITH_EPERM.contains(nr));
            assert!(
                !ARG_RULES.iter().any(|r| r.syscall == *nr),
                "syscall {nr} is both allowed outright and argument-checked"
            );
        }
        for r in ARG_RULES {
            assert!(!r.why.is_empty() && !r.checks.is_empty(), "{r:?}");
        }
        for soft in ARG_RULES_ERRNO {
            assert!(
                allowed.contains(&soft.syscall),
                "a soft rule narrows an allowed call: {soft:?}"
            );
        }
    }

    /// Every call any table of the filter mentions has a name, so a violation report reads as
    /// a name; the call the SIGSYS handler uses to end the process is on no list and has none.
    #[test]
    fn every_call_the_filter_mentions_has_a_name() {
        let mentioned = ALLOWED
            .iter()
            .map(|&(nr, _)| nr)
            .chain(DENIED_WITH_EACCES.iter().copied())
            .chain(DENIED_WITH_EPERM.iter().copied())
            .chain(ARG_RULES.iter().map(|r| r.syscall))
            .chain(ARG_RULES_ERRNO.iter().map(|r| r.syscall))
            .chain([libc::SYS_clone3]);
        for nr in mentioned {
            assert!(
                crate::syscall_name(nr).is_some(),
                "syscall {nr} has no name"
            );
        }
        let never = violation::NEVER_ALLOWED_SYSCALL;
        assert_eq!(crate::syscall_name(never), None);
        assert!(!ALLOWED.iter().any(|&(nr, _)| nr == never));
        assert!(!ARG_RULES.iter().any(|r| r.syscall == never));
    }

    #[test]
    fn argument_forms_expand_to_one_rule_per_value() {
        let futex = ARG_RULES
            .iter()
            .find(|r| r.syscall == libc::SYS_futex)
            .unwrap();
        assert_eq!(form_rules(futex, 1).unwrap().len(), 7);
        let mmap = ARG_RULES
            .iter()
            .find(|r| r.syscall == libc::SYS_mmap)
            .unwrap();
        assert_eq!(form_rules(mmap, 1).unwrap().len(), 2);
        let masked_none_of = ArgRule {
            syscall: libc::SYS_madvise,
            checks: &[ArgCheck {
                arg: 2,
                width: Width::Int,
                mask: 0xff,
                expect: Expect::NoneOf(&[1]),
            }],
            why: "test",
        };
        assert!(form_rules(&masked_none_of, 1).is_err());
    }
}
