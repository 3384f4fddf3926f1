//! `loadgen`: drives the running platform (as `dev/up` starts it) with meter readings, measures
//! the machine's own ceilings for the same work, prints a table and writes a JSON file.
//!
//! Run: `cargo run --release -p loadgen -- --help`.

use anyhow::{Context, bail};
use clap::Parser;
use loadgen::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let report = loadgen::run(&config, true)
        .await
        .context("the benchmark run failed")?;

    println!("{}", report.table());
    report
        .write_json(&config.output)
        .with_context(|| format!("write {}", config.output.display()))?;
    println!("figures written to {}", config.output.display());
    if !report.no_loss.passed {
        bail!(
            "no-loss check failed: {}",
            report.no_loss.problems.join("; ")
        );
    }
    Ok(())
}
