//! The load generator's smoke mode against the real platform: the carbon function, billing and
//! the recommender as processes on a database, topic and vhost of this test's own, and a few
//! hundred readings through the library, after which nothing may be lost or duplicated.
//!
//! Needs the services of `dev/services up` (source `/tmp/energy-platform/env`) and the
//! platform's binaries in the same target folder (`cargo build --workspace`).

use std::time::Duration;

use clap::Parser;
use e2e_tests::{Process, free_port, wait_healthy};
use energy_testkit::kafka::TestKafka;
use energy_testkit::postgres::TestDatabase;
use energy_testkit::rabbitmq::TestVhost;
use loadgen::Config;
use serde_json::json;

/// How long a process may take to become healthy.
const START_LIMIT: Duration = Duration::from_secs(120);

/// The platform's processes, killed when dropped.
struct Platform {
    group: String,
    billing_url: String,
    kafka_bootstrap: String,
    topic: String,
    db: TestDatabase,
    _processes: Vec<Process>,
    _vhost: TestVhost,
}

fn env(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_string(), value.into())
}

async fn start_platform() -> anyhow::Result<Platform> {
    energy_testkit::install_crypto_provider();
    let db = TestDatabase::create("loadgen").await?;
    let kafka = TestKafka::connect().await?;
    let topic = kafka.topic_name("loadgen");
    kafka.create_topic(&topic, 6).await?;
    kafka.create_topic(&format!("{topic}.dlq"), 1).await?;
    let vhost = TestVhost::create("loadgen").await?;
    let logs = std::env::temp_dir().join(energy_testkit::unique_name("loadgen"));
    std::fs::create_dir_all(&logs)?;
    let thresholds = logs.join("thresholds.json");
    let limits = json!({ "absoluteKwhPerHour": 5.0, "timeZone": "Europe/London" });
    std::fs::write(&thresholds, limits.to_string())?;

    let carbon_port = free_port()?;
    let carbon = Process::start(
        "carbon-calculator",
        vec![env("BIND_ADDRESS", format!("127.0.0.1:{carbon_port}"))],
        &logs,
    )
    .await?;
    let carbon_health = format!("http://127.0.0.1:{carbon_port}/_/health");
    wait_healthy(&carbon_health, START_LIMIT, &carbon.log).await?;

    let billing_port = free_port()?;
    let billing = Process::start(
        "billing",
        vec![
            env("BIND_ADDRESS", format!("127.0.0.1:{billing_port}")),
            env("DATABASE_URL", db.url.clone()),
            env("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap.clone()),
            env("KAFKA_TOPIC", topic.clone()),
            env("AMQP_URL", vhost.amqp_url.clone()),
        ],
        &logs,
    )
    .await?;
    let billing_url = format!("http://127.0.0.1:{billing_port}");
    wait_healthy(&format!("{billing_url}/readyz"), START_LIMIT, &billing.log).await?;

    let recommender_port = free_port()?;
    let group = energy_testkit::unique_name("recommender");
    let recommender = Process::start(
        "recommender",
        vec![
            env("METRICS_ADDRESS", format!("127.0.0.1:{recommender_port}")),
            env("DATABASE_URL", db.url.clone()),
            env("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap.clone()),
            env("KAFKA_TOPIC", topic.clone()),
            env("KAFKA_GROUP", group.clone()),
            env("CARBON_URL", format!("http://127.0.0.1:{carbon_port}/")),
            env("AMQP_URL", vhost.amqp_url.clone()),
            env("THRESHOLDS_FILE", thresholds.display().to_string()),
        ],
        &logs,
    )
    .await?;
    let recommender_health = format!("http://127.0.0.1:{recommender_port}/healthz");
    wait_healthy(&recommender_health, START_LIMIT, &recommender.log).await?;

    Ok(Platform {
        group,
        billing_url,
        kafka_bootstrap: kafka.bootstrap.clone(),
        topic,
        db,
        _processes: vec![recommender, billing, carbon],
        _vhost: vhost,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_smoke_run_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    let platform = start_platform().await?;
    let output = std::env::temp_dir().join(energy_testkit::unique_name("loadgen-smoke"));
    let output = output.with_extension("json");
    let config = Config::parse_from([
        "loadgen",
        "--smoke",
        "--billing-url",
        &platform.billing_url,
        "--database-url",
        &platform.db.url,
        "--kafka-bootstrap",
        &platform.kafka_bootstrap,
        "--topic",
        &platform.topic,
        "--group",
        &platform.group,
        "--output",
        &output.display().to_string(),
    ]);

    let report = loadgen::run(&config, false).await?;
    report.write_json(&config.output)?;

    let check = &report.no_loss;
    assert!(check.passed, "no-loss check failed: {:?}", check.problems);
    assert!(
        (200..=500).contains(&check.accepted),
        "a smoke run sends a few hundred readings, not {}",
        check.accepted
    );
    assert_eq!(check.distinct, check.accepted);
    assert_eq!(check.readings, check.accepted);
    assert_eq!(check.kafka_messages, check.accepted);
    assert_eq!(check.recommendations, check.accepted);
    assert_eq!(check.outbox_unsent, 0);

    // Every RED reading of the steady phase reached the socket.
    assert!(report.alerts_expected > 0);
    assert_eq!(report.alert_latency.count, report.alerts_expected as u64);

    // The JSON file holds the same verdict.
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&output)?)?;
    assert_eq!(written["no_loss"]["passed"], true);
    assert_eq!(written["no_loss"]["accepted"], check.accepted);
    std::fs::remove_file(&output).ok();
    Ok(())
}
