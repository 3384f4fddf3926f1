//! The operator binary.
//!
//! - `operator provision --file platform.yaml --amqp-url ...`: converges the Kafka topic and
//!   the RabbitMQ topology of an EnergyPlatform resource file with the operator's own code,
//!   without a cluster (used by `dev/up`); `--delete` removes them as `deletionPolicy: Delete`
//!   would.
//! - `operator run`: the Kubernetes controller, with leader election, `/metrics`, `/healthz`
//!   and `/readyz` (see `operator run --help`; every flag is also an environment variable).
//! - `operator thresholds --file platform.yaml`: prints the recommender's thresholds JSON, the
//!   content of the ConfigMap the controller writes.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use operator::EnergyPlatform;
use operator::controller::runner::{self, LogFormat, RunArgs};
use operator::provision::{KafkaProvisioner, RabbitProvisioner};

/// EnergyPlatform operator.
#[derive(Debug, Parser)]
#[command(name = "operator", version)]
struct Cli {
    /// Log format: `text` for a terminal, `json` for deployments.
    #[arg(long, env = "LOG_FORMAT", value_enum, global = true, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller: reconcile EnergyPlatform resources until SIGTERM.
    Run(RunArgs),
    /// Provision the Kafka topic and RabbitMQ topology of a resource file, without a cluster.
    Provision {
        /// EnergyPlatform resource (YAML or JSON).
        #[arg(long, short = 'f', env = "PLATFORM_FILE")]
        file: PathBuf,
        /// Kafka bootstrap servers, instead of the file's `spec.kafka.bootstrapServers`.
        #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
        kafka_bootstrap: Option<String>,
        /// AMQP URI (the value the file's `rabbitmq.uriSecretRef` names in a cluster).
        #[arg(long, env = "AMQP_URL")]
        amqp_url: String,
        /// Remove the topic and topology instead.
        #[arg(long)]
        delete: bool,
    },
    /// Print the recommender's thresholds JSON for a resource file.
    Thresholds {
        /// EnergyPlatform resource (YAML or JSON).
        #[arg(long, short = 'f', env = "PLATFORM_FILE")]
        file: PathBuf,
    },
}

fn read_platform(file: &PathBuf) -> anyhow::Result<EnergyPlatform> {
    let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    serde_norway::from_str(&text)
        .with_context(|| format!("{} is not an EnergyPlatform", file.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    runner::init_logging(cli.log_format);
    let _ = rustls::crypto::ring::default_provider().install_default();

    match cli.command {
        Command::Run(args) => runner::run(args).await.context("operator run")?,
        Command::Provision {
            file,
            kafka_bootstrap,
            amqp_url,
            delete,
        } => {
            let mut platform = read_platform(&file)?;
            if let Some(bootstrap) = kafka_bootstrap {
                platform.spec.kafka.bootstrap_servers = bootstrap;
            }
            let kafka = KafkaProvisioner::new(&platform.spec.kafka.bootstrap_servers)?;
            let rabbit = RabbitProvisioner::connect(&amqp_url).await?;
            if delete {
                kafka.delete(&platform.spec.kafka).await?;
                rabbit.delete(&platform.spec.rabbitmq).await?;
            } else {
                let outcome = kafka.ensure(&platform.spec.kafka).await?;
                rabbit.ensure(&platform.spec.rabbitmq).await?;
                println!(
                    "topic {} ready with {} partitions; exchange {} and queue {} ready",
                    platform.spec.kafka.topic,
                    outcome.partitions,
                    platform.spec.rabbitmq.exchange,
                    platform.spec.rabbitmq.alert_queue
                );
            }
        }
        Command::Thresholds { file } => {
            let platform = read_platform(&file)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&platform.spec.thresholds)?
            );
        }
    }
    Ok(())
}
