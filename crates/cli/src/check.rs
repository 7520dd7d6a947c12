//! `roma check`: what the sandbox holds on this machine.

use crate::service::SandboxArg;
use anyhow::Result;
use clap::Args;
use roma::SandboxKind;
use roma::tools::{escape_control, escape_control_json};
use serde_json::json;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The jail to test.
    #[arg(long, value_enum, default_value = "namespaces")]
    pub sandbox: SandboxArg,
    /// One JSON object per probe instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn check(args: CheckArgs) -> Result<ExitCode> {
    let kind = match args.sandbox {
        SandboxArg::Namespaces => SandboxKind::Namespaces,
        SandboxArg::Birdcage => SandboxKind::Birdcage,
        SandboxArg::None => SandboxKind::None,
    };
    if !args.json {
        println!("{}", crate::engine_versions());
    }
    let results = roma::check(kind)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.kind().as_str(), escape_control(e.message())))?;
    let mut all_held = true;
    for r in &results {
        all_held &= r.held;
        if args.json {
            // Names and details come from the worker: escaped like everything else it says.
            let line = json!({"name": r.name, "attempted": r.attempted, "held": r.held, "detail": r.detail});
            println!("{}", escape_control_json(&line.to_string()));
        } else {
            let mark = if r.held { "held  " } else { "OPEN  " };
            println!(
                "{mark}{:<32} {}",
                escape_control(&r.name),
                escape_control(&r.detail)
            );
        }
    }
    if !args.json {
        println!(
            "{} of {} protections held in the {} sandbox",
            results.iter().filter(|r| r.held).count(),
            results.len(),
            kind.as_str()
        );
    }
    Ok(if all_held {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
