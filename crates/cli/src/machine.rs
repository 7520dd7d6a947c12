//! The machine a figure was measured on: its CPU model, its cores and its load. `roma bench`
//! prints them beside its figures, and xtask's benches (`bench-serve`, `hostile-serve`,
//! `cluster`) include this file by path (`#[path]`), so that every report names the machine in
//! the same words.

/// The CPU model as `/proc/cpuinfo` names it ("unknown CPU" where it does not).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The cores this process may run on: the count roma's defaults use.
pub use roma::tools::cores;

/// The 1, 5 and 15 minute load averages as `/proc/loadavg` gives them ("?" where it cannot
/// be read).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "?".into())
}
