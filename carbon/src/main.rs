//! The carbon calculator binary: reads the configuration, sets up logs, serves until SIGTERM.
//!
//! `carbon-calculator --help` lists the flags; each has an environment variable too.

use anyhow::Context;
use carbon_calculator::{Config, server, telemetry};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_format).context("setting up logging")?;
    server::run(&config)
        .await
        .context("running the carbon calculator")
}
