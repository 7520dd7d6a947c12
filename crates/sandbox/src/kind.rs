//! The names of the jail backends, shared by the host side (which picks one) and the launcher
//! (which reads it back from the worker's command line).

use crate::SandboxError;
use std::fmt;

/// Which jail a worker runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JailKind {
    /// roma's own jail: user, mount, pid, net, ipc, uts and cgroup namespaces, a read-only root
    /// holding only the worker's binary and libraries, no capabilities, rlimits.
    Namespaces,
    /// birdcage 0.8.1 (cargo feature `birdcage`; GPL-3.0-or-later).
    Birdcage,
    /// No jail at all: a plain child process. For debugging only.
    None,
}

impl JailKind {
    /// Every kind.
    pub const ALL: [JailKind; 3] = [JailKind::Namespaces, JailKind::Birdcage, JailKind::None];

    /// The name used by `sandbox_by_name` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            JailKind::Namespaces => "namespaces",
            JailKind::Birdcage => "birdcage",
            JailKind::None => "none",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Result<JailKind, SandboxError> {
        JailKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| SandboxError::UnknownBackend(name.to_owned()))
    }
}

impl fmt::Display for JailKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_an_error() {
        for k in JailKind::ALL {
            assert_eq!(JailKind::from_name(k.as_str()).unwrap(), k);
        }
        assert!(matches!(
            JailKind::from_name("chroot"),
            Err(SandboxError::UnknownBackend(n)) if n == "chroot"
        ));
    }
}
