//! Stopping and starting the shared dev services, for tests that prove nothing is lost while a
//! broker or the database is away.
//!
//! These act on the services every test shares, so a test that uses them must be the only test
//! in its test binary (cargo runs test binaries one after another, never side by side).

use std::path::PathBuf;

use crate::{Error, Result};

/// One of the services `dev/services` manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// PostgreSQL.
    Postgres,
    /// RabbitMQ.
    RabbitMq,
    /// Kafka.
    Kafka,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::RabbitMq => "rabbitmq",
            Self::Kafka => "kafka",
        }
    }
}

/// Stops `service`, keeping its data.
pub async fn stop(service: Service) -> Result<()> {
    dev_services("stop", service).await
}

/// Starts a stopped `service` again on its data and waits until it answers.
pub async fn start(service: Service) -> Result<()> {
    dev_services("start", service).await
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dev/services")
}

async fn dev_services(action: &str, service: Service) -> Result<()> {
    let output = tokio::process::Command::new("bash")
        .arg(script())
        .arg(action)
        .arg(service.name())
        .output()
        .await
        .map_err(|e| Error::refused("dev/services", format!("{action} {}", service.name()), e))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        return Err(Error::refused(
            "dev/services",
            format!("{action} {}", service.name()),
            stderr,
        ));
    }
    Ok(())
}
