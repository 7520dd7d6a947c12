//! Log severities shared by the engine's console and the host's logging function.

use serde::{Deserialize, Serialize};

/// Severity of a console message. Ordered: `Debug < Info < Warning < Error`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum LogLevel {
    /// `console.debug`.
    Debug,
    /// `console.log` and `console.info` (Roma's default minimum level).
    #[default]
    Info,
    /// `console.warn`.
    Warning,
    /// `console.error`, and uncaught errors.
    Error,
}

impl LogLevel {
    /// Lowercase name: `debug`, `info`, `warning`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
        }
    }

    /// The level for a small integer (0..=3), as carried across the shim.
    pub fn from_u8(v: u8) -> Option<LogLevel> {
        match v {
            0 => Some(LogLevel::Debug),
            1 => Some(LogLevel::Info),
            2 => Some(LogLevel::Warning),
            3 => Some(LogLevel::Error),
            _ => None,
        }
    }
}
