//! Process jails for roma workers.
//!
//! The second layer of roma's isolation: the V8 engine runs in a worker process that this crate
//! starts inside a jail (new user, mount, pid, net, ipc and uts namespaces, a read-only root of
//! only what the worker needs, a seccomp-bpf allow-list, rlimits), so that even a V8 exploit
//! lands in a box with no files, no network and no new processes. Backends sit behind one
//! `Sandbox` trait: our own namespaces jail, birdcage (a cargo feature; GPL-3.0-or-later), and
//! an unjailed one for debugging.
#![deny(missing_docs)]
