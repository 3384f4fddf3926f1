//! The operator's benchmark: applies many EnergyPlatforms across many namespaces against the
//! real API server, Kafka and RabbitMQ of `dev/services`, with the real `operator run` binary,
//! and reports
//!
//! - apply-to-Ready time of one resource on its own (target: within 5 s),
//! - apply-to-Ready of a burst of resources, each and all (target: 200 within 60 s),
//! - writes made by a steady-state resync (target: 0), from the operator's own `writes` counter
//!   and from the resourceVersions of what it manages,
//! - the operator's resident memory, now and at its peak (target: under 64 MiB).
//!
//! Run after `dev/services up` and `source /tmp/energy-platform/env`:
//!
//! ```sh
//! cargo build --release -p operator
//! target/release/operator-bench --resources 200 --namespaces 20 --out operator-bench.json
//! ```
//!
//! The resources use `deletionPolicy: Delete` and are deleted at the end, which removes their
//! topics and queues; the namespaces stay (no namespace controller runs on the dev API server).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use operator::EnergyPlatform;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MANAGER: &str = "operator-bench";
const LABEL: &str = "bench.energy.platform.dev/run";

/// Benchmark of the EnergyPlatform operator.
#[derive(Debug, Parser)]
struct Args {
    /// Resources in the burst.
    #[arg(long, default_value_t = 200)]
    resources: usize,
    /// Namespaces the burst is spread over.
    #[arg(long, default_value_t = 20)]
    namespaces: usize,
    /// Resync period the operator runs with, seconds; the steady-state window covers it.
    #[arg(long, default_value_t = 20)]
    resync_secs: u64,
    /// Longest the burst may take to become Ready before the run gives up, seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Where the figures are written as JSON.
    #[arg(long, default_value = "operator-bench.json")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = env("EP_KUBECONFIG")?;
    let bootstrap = env("EP_KAFKA_BOOTSTRAP")?;
    let amqp = env("EP_AMQP_URL")?;
    let client = client(&kubeconfig).await?;
    install_crd(&client).await?;
    let run = format!("b{}", std::process::id());

    // The operator under test, as the real binary with its own metrics port.
    let port = free_port()?;
    let binary = std::env::current_exe()?.with_file_name("operator");
    let mut operator = tokio::process::Command::new(&binary)
        .arg("run")
        .env("KUBECONFIG", &kubeconfig)
        .env("HTTP_ADDRESS", format!("127.0.0.1:{port}"))
        .env("LEADER_ELECTION", "false")
        .env("RESYNC_SECS", args.resync_secs.to_string())
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "start {} (build it with cargo build -p operator)",
                binary.display()
            )
        })?;
    let pid = operator.id().context("operator pid")?;
    wait_for_metrics(port).await?;

    let namespaces: Vec<String> = (0..args.namespaces).map(|n| format!("{run}-{n}")).collect();
    for namespace in &namespaces {
        prepare_namespace(&client, namespace, &amqp).await?;
    }

    // One resource on its own: the latency a user sees.
    let single = format!("{run}-single");
    let started = Instant::now();
    apply(&client, &namespaces[0], &single, &run, &bootstrap).await?;
    wait_ready(&client, &namespaces[0], &single, Duration::from_secs(60)).await?;
    let single_secs = started.elapsed().as_secs_f64();
    println!("one resource: Ready {single_secs:.2} s after apply");

    // The burst.
    let burst_start = Instant::now();
    let mut applied_at = BTreeMap::new();
    for i in 0..args.resources {
        let namespace = &namespaces[i % namespaces.len()];
        let name = format!("p{i}");
        applied_at.insert((namespace.clone(), name.clone()), burst_start.elapsed());
        apply(&client, namespace, &name, &run, &bootstrap).await?;
    }
    let ready_at =
        wait_all_ready(&client, &run, &applied_at, burst_start, args.timeout_secs).await?;
    let all_secs = burst_start.elapsed().as_secs_f64();
    let mut each: Vec<f64> = applied_at
        .iter()
        .map(|(key, applied)| ready_at[key].saturating_sub(*applied).as_secs_f64())
        .collect();
    each.sort_by(f64::total_cmp);
    println!(
        "{} resources in {} namespaces: all Ready {all_secs:.1} s after the first apply; each \
         p50 {:.2} s, p99 {:.2} s, max {:.2} s",
        args.resources,
        args.namespaces,
        percentile(&each, 0.50),
        percentile(&each, 0.99),
        each.last().copied().unwrap_or_default()
    );

    // Steady state: a full resync period with nothing changed.
    let writes_before = writes(port).await?;
    let versions_before = versions(&client, &run).await?;
    tokio::time::sleep(Duration::from_secs(
        args.resync_secs + args.resync_secs / 2 + 5,
    ))
    .await;
    let writes_after = writes(port).await?;
    let versions_after = versions(&client, &run).await?;
    let changed = versions_before
        .iter()
        .filter(|(k, v)| versions_after.get(*k) != Some(v))
        .count();
    let steady_writes = writes_after - writes_before;
    println!(
        "steady-state resync: {steady_writes} writes by the operator's count, {changed} of {} \
         objects with a new resourceVersion",
        versions_before.len()
    );

    let (rss_kib, peak_kib) = memory(pid)?;
    println!(
        "operator memory: {:.1} MiB resident, {:.1} MiB peak",
        mib(rss_kib),
        mib(peak_kib)
    );

    let figures = json!({
        "machine": {
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "os": std::env::consts::OS,
        },
        "resources": args.resources,
        "namespaces": args.namespaces,
        "singleApplyToReadySecs": single_secs,
        "burstAllReadySecs": all_secs,
        "burstEachReadySecs": {
            "p50": percentile(&each, 0.50),
            "p99": percentile(&each, 0.99),
            "max": each.last().copied().unwrap_or_default(),
        },
        "steadyStateWrites": steady_writes,
        "steadyStateChangedObjects": changed,
        "operatorRssMiB": mib(rss_kib),
        "operatorPeakRssMiB": mib(peak_kib),
        "targets": {
            "singleApplyToReadySecs": 5.0,
            "burstAllReadySecs": 60.0,
            "steadyStateWrites": 0,
            "operatorRssMiB": 64.0,
        },
    });
    std::fs::write(&args.out, serde_json::to_string_pretty(&figures)?)?;
    println!("figures written to {}", args.out.display());

    cleanup(&client, &run, &namespaces).await?;
    operator.kill().await.ok();
    Ok(())
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: run dev/services up and source /tmp/energy-platform/env")
    })
}

async fn client(kubeconfig: &str) -> anyhow::Result<Client> {
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    Ok(Client::try_from(config)?)
}

/// Applies the EnergyPlatform CRD generated from the Rust types and waits until it is served.
async fn install_crd(client: &Client) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;

    let crd = EnergyPlatform::crd();
    Api::<CustomResourceDefinition>::all(client.clone())
        .patch(
            &crd.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
    let api: Api<EnergyPlatform> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.list(&ListParams::default().limit(1)).await.is_err() {
        if Instant::now() > deadline {
            bail!("the EnergyPlatform CRD was not served within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn prepare_namespace(client: &Client, namespace: &str, amqp: &str) -> anyhow::Result<()> {
    let params = PatchParams::apply(MANAGER).force();
    let ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}
    }))?;
    Api::<Namespace>::all(client.clone())
        .patch(namespace, &params, &Patch::Apply(&ns))
        .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for (name, key, value) in [
        ("rabbitmq", "uri", amqp),
        ("postgres", "url", "postgres://x@db/x"),
    ] {
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "stringData": {key: value}
        }))?;
        secrets.patch(name, &params, &Patch::Apply(&secret)).await?;
    }
    Ok(())
}

/// Applies one resource whose topic and queues are its own.
async fn apply(
    client: &Client,
    namespace: &str,
    name: &str,
    run: &str,
    bootstrap: &str,
) -> anyhow::Result<()> {
    let unique = format!("{namespace}.{name}");
    let platform = json!({
        "apiVersion": "energy.platform.dev/v1alpha1",
        "kind": "EnergyPlatform",
        "metadata": {"name": name, "namespace": namespace, "labels": {LABEL: run}},
        "spec": {
            "kafka": {"bootstrapServers": bootstrap, "topic": unique, "partitions": 1},
            "rabbitmq": {
                "uriSecretRef": {"name": "rabbitmq", "key": "uri"},
                "exchange": format!("{unique}.alerts"),
                "alertQueue": format!("{unique}.red"),
                "deadLetterExchange": format!("{unique}.dlx")
            },
            "database": {"urlSecretRef": {"name": "postgres", "key": "url"}},
            "carbonFunction": {
                "image": "carbon-calculator:bench", "mode": "Deployment",
                "namespace": namespace, "name": format!("carbon-{name}")
            },
            "billing": {"image": "billing:bench"},
            "recommender": {"image": "recommender:bench"},
            "thresholds": {"absoluteKwhPerHour": 5.0},
            "deletionPolicy": "Delete"
        }
    });
    Api::<EnergyPlatform>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&platform),
        )
        .await
        .with_context(|| format!("apply {namespace}/{name}"))?;
    Ok(())
}

fn is_ready(platform: &EnergyPlatform) -> bool {
    let Some(status) = &platform.status else {
        return false;
    };
    status.observed_generation == platform.metadata.generation
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

async fn wait_ready(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let api: Api<EnergyPlatform> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    while !is_ready(&api.get(name).await?) {
        if Instant::now() > deadline {
            bail!("{namespace}/{name} not Ready within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Polls every resource of the run until all are Ready; when each first was, measured from
/// `start` like the apply times.
async fn wait_all_ready(
    client: &Client,
    run: &str,
    applied_at: &BTreeMap<(String, String), Duration>,
    start: Instant,
    timeout_secs: u64,
) -> anyhow::Result<BTreeMap<(String, String), Duration>> {
    let api: Api<EnergyPlatform> = Api::all(client.clone());
    let params = ListParams::default().labels(&format!("{LABEL}={run}"));
    let mut ready = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    while ready.len() < applied_at.len() {
        for platform in api.list(&params).await? {
            let key = (
                platform.namespace().unwrap_or_default(),
                platform.name_any(),
            );
            if applied_at.contains_key(&key) && !ready.contains_key(&key) && is_ready(&platform) {
                ready.insert(key, start.elapsed());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {} Ready within {timeout_secs} s",
                ready.len(),
                applied_at.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(ready)
}

/// resourceVersions of the run's resources and of every Deployment in its namespaces.
async fn versions(client: &Client, run: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut versions = BTreeMap::new();
    let params = ListParams::default().labels(&format!("{LABEL}={run}"));
    for platform in Api::<EnergyPlatform>::all(client.clone())
        .list(&params)
        .await?
    {
        let namespace = platform.namespace().unwrap_or_default();
        versions.insert(
            format!("ep/{namespace}/{}", platform.name_any()),
            platform.resource_version().unwrap_or_default(),
        );
    }
    for deployment in Api::<Deployment>::all(client.clone())
        .list(&ListParams::default())
        .await?
    {
        let namespace = deployment.namespace().unwrap_or_default();
        if namespace.starts_with(run) {
            versions.insert(
                format!("deploy/{namespace}/{}", deployment.name_any()),
                deployment.resource_version().unwrap_or_default(),
            );
        }
    }
    Ok(versions)
}

async fn metrics_text(port: u16) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text)
}

async fn wait_for_metrics(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while metrics_text(port).await.is_err() {
        if Instant::now() > deadline {
            bail!("the operator did not serve /metrics within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The operator's `writes` counter.
async fn writes(port: u16) -> anyhow::Result<u64> {
    let text = metrics_text(port).await?;
    text.lines()
        .find(|line| line.starts_with("energyplatform_writes_total "))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse::<f64>().ok())
        .map(|value| value as u64)
        .context("no energyplatform_writes_total in /metrics")
}

/// VmRSS and VmHWM (peak) of a process, KiB.
fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index]
}

/// Deletes the run's resources (their topics and queues go with them) and waits.
async fn cleanup(client: &Client, run: &str, namespaces: &[String]) -> anyhow::Result<()> {
    let params = ListParams::default().labels(&format!("{LABEL}={run}"));
    for namespace in namespaces {
        let api: Api<EnergyPlatform> = Api::namespaced(client.clone(), namespace);
        api.delete_collection(&Default::default(), &params).await?;
    }
    let all: Api<EnergyPlatform> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    while !all.list(&params).await?.items.is_empty() {
        if Instant::now() > deadline {
            bail!("resources of run {run} still present after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("cleaned up: resources, topics and queues of run {run} deleted");
    Ok(())
}
