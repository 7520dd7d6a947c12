//! The `roma` command.
fn main() {
    eprintln!("roma: not built yet");
    std::process::exit(2);
}
