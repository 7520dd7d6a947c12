//! The CPU-profile fixture that roma-v8's engine tests (`js.rs`) and roma's service tests
//! (`crates/roma/tests/all/profile.rs`, which include this file as a module by path) share: one
//! handler that keeps the CPU busy in a named function, and one reader of the profile it leaves.

/// A handler that keeps the CPU busy for about 30 ms inside a named function.
pub const SPIN: &str = "function busyLoop(ms) { const end = Date.now() + ms; let n = 0;\n\
       while (Date.now() < end) { n++; } return n; }\n\
     function SpinHandler() { return busyLoop(30) > 0; }";

/// The function names of a `.cpuprofile` JSON text's nodes.
pub fn profile_functions(profile: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(profile).expect("the profile is JSON");
    v["nodes"]
        .as_array()
        .expect("the profile has nodes")
        .iter()
        .filter_map(|n| n["callFrame"]["functionName"].as_str().map(str::to_owned))
        .collect()
}
