//! One benchmark run from start to end: phases, settling, latencies, ceilings, no-loss check.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use crate::Result;
use crate::alerts::AlertListener;
use crate::ceiling::{self, Rate, ScratchDatabase};
use crate::config::Config;
use crate::driver::{Driver, Mode, PhaseOutcome, Sent};
use crate::hold::Held;
use crate::probe::{OutboxTimes, Probe, Table};
use crate::report::{Ceilings, Machine, NoLossCheck, PhaseReport, PhaseWindow, Report};
use crate::stats::{Recorder, Summary};
use crate::workload::{Lanes, Planned, Workload};

/// Longest wait for the WebSocket alerts after the pipeline has caught up.
const ALERT_GRACE: Duration = Duration::from_secs(10);
/// Longest wait for the recommender's consumer group to become stable.
const GROUP_LIMIT: Duration = Duration::from_secs(60);
/// Interval at which billing's resident memory is sampled.
const RSS_EVERY: Duration = Duration::from_millis(200);

/// Runs the benchmark `config` describes; shows progress bars when `progress` is set.
pub async fn run(config: &Config, progress: bool) -> Result<Report> {
    let config = config.effective();
    let run_id = format!("lg-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let started_at = Utc::now();

    // Everything must answer before the first reading goes out.
    let driver = Driver::new(&config.billing_url, config.concurrency)?;
    driver.ready().await?;
    let probe =
        Probe::connect(&config.database_url, &config.kafka_bootstrap, &config.topic).await?;
    if let Some(group) = &config.group {
        probe.wait_group_stable(group, GROUP_LIMIT).await?;
    }
    let partitions = probe.partitions().await?;
    let offsets_before = probe.topic_end_offsets().await?;
    let alerts = AlertListener::connect(&config.billing_url).await?;
    let rss = config.billing_pid.map(RssSampler::start);

    let steady_count = (config.steady_rate as u64 * config.steady_secs) as usize;
    let warmup_count = (config.steady_rate as u64 * config.warmup_secs) as usize;
    let total = warmup_count + steady_count + config.single_readings + config.batch_readings;
    let mut workload = Workload::new(
        &run_id,
        config.properties,
        config.interval_mins,
        total,
        started_at,
    );
    let lanes = config.concurrency.max(1);

    let warmup_plan = workload.plan(warmup_count, lanes, None, 0.0);
    let steady_plan = workload.plan(
        steady_count,
        lanes,
        Some(config.alert_every),
        config.alert_kwh,
    );
    let single_plan = workload.plan(config.single_readings, lanes, None, 0.0);
    let batch_plan = workload.plan(config.batch_readings, lanes, None, 0.0);

    // The warm-up, reported nowhere but in the no-loss check; then the three phases, each
    // followed by the wait for the recommender.
    let rate = f64::from(config.steady_rate.max(1));
    let warmup = phase(
        &driver,
        &probe,
        "warm-up",
        warmup_plan,
        Mode::Paced { rate },
        Duration::from_secs(config.warmup_secs + 5),
        &config,
        progress,
        None,
    )
    .await?;
    let steady_limit = Duration::from_secs(config.steady_secs + 5);
    let steady = phase(
        &driver,
        &probe,
        "steady",
        steady_plan,
        Mode::Paced { rate },
        steady_limit,
        &config,
        progress,
        None,
    )
    .await?;
    let single_lanes = single_plan.clone();
    let single = phase(
        &driver,
        &probe,
        "single",
        single_plan,
        Mode::Single,
        config.phase_limit(),
        &config,
        progress,
        config.hold_pid,
    )
    .await?;
    let batch_lanes = batch_plan.clone();
    let batch_mode = Mode::Batch(config.batch_size);
    let batch = phase(
        &driver,
        &probe,
        "batch",
        batch_plan,
        batch_mode,
        config.phase_limit(),
        &config,
        progress,
        config.hold_pid,
    )
    .await?;

    // Alerts of the steady phase, as the page would see them.
    let alert_ids: Vec<&Sent> = steady.outcome.accepted.iter().filter(|s| s.alert).collect();
    let deadline = tokio::time::Instant::now() + ALERT_GRACE;
    while alert_ids
        .iter()
        .any(|s| !alerts.arrivals().contains_key(&s.event_id))
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let arrivals = alerts.arrivals();
    let mut alert_latency = Recorder::new();
    for sent in &alert_ids {
        if let Some(at) = arrivals.get(&sent.event_id) {
            alert_latency.record_micros(micros(sent.sent_at, *at));
        }
    }
    drop(alerts);
    let billing_rss_max_mib = match rss {
        Some(sampler) => Some(sampler.stop().await),
        None => None,
    };

    let ceilings = if config.skip_ceilings {
        None
    } else {
        let spinner = bar_spinner(progress, "measuring the machine's ceilings".into());
        let ceilings = ceilings(&config, &run_id, partitions, single_lanes, batch_lanes).await?;
        spinner.finish_and_clear();
        Some(ceilings)
    };

    // The no-loss check over every reading billing accepted in this run.
    let offsets_after = probe.topic_end_offsets().await?;
    let outcomes = [
        &warmup.outcome,
        &steady.outcome,
        &single.outcome,
        &batch.outcome,
    ];
    let no_loss = no_loss(&probe, &outcomes, offsets_after - offsets_before, &config).await?;

    let machine = Machine::describe(&probe, &driver).await;
    Ok(Report {
        run_id,
        started_at,
        smoke: config.smoke,
        concurrency: config.concurrency,
        batch_size: config.batch_size,
        pool_size: config.pool_size,
        properties: config.properties,
        interval_mins: config.interval_mins,
        machine,
        phases: vec![steady.report, single.report, batch.report],
        alert_latency: alert_latency.summary(),
        alerts_expected: alert_ids.len(),
        billing_rss_max_mib,
        held_pid: config.hold_pid,
        ceilings,
        no_loss,
    })
}

/// A phase's outcome and its report.
struct Phase {
    outcome: PhaseOutcome,
    report: PhaseReport,
}

#[allow(clippy::too_many_arguments)]
async fn phase(
    driver: &Driver,
    probe: &Probe,
    name: &'static str,
    plan: Lanes,
    mode: Mode,
    limit: Duration,
    config: &Config,
    progress: bool,
    hold: Option<u32>,
) -> Result<Phase> {
    let planned: usize = plan.iter().map(Vec::len).sum();
    let bar = bar(progress, planned as u64, name);
    let held = hold.map(Held::stop).transpose()?;
    let started_ms = Utc::now().timestamp_millis();
    let outcome = driver.run_phase(plan, mode, limit, &bar).await;
    let loaded_ms = Utc::now().timestamp_millis();
    bar.finish_and_clear();
    if let Some(held) = held {
        held.resume()?;
    }

    // Wait until the recommender has caught up with this phase, then read its times.
    let ids: Vec<Uuid> = outcome.accepted.iter().map(|s| s.event_id).collect();
    let settle = bar_spinner(
        progress,
        format!("{name}: waiting for the recommender to catch up"),
    );
    probe.wait_recommended(&ids, config.settle_limit()).await?;
    let settled_ms = Utc::now().timestamp_millis();
    settle.finish_and_clear();
    let recommended = probe.recommended_at(&ids).await?;
    let outbox = probe.outbox_times(&ids).await?;

    let report = PhaseReport {
        name,
        planned,
        accepted: outcome.accepted.len(),
        failed: outcome.failed,
        first_error: outcome.first_error.clone(),
        secs: outcome.elapsed.as_secs_f64(),
        accepted_per_sec: outcome.rate(),
        request_latency: outcome.request_latency.clone(),
        end_to_end: end_to_end(&outcome.accepted, &recommended),
        outbox_age: outbox_age(&outbox),
        relay_per_sec: relay_rate(&outbox),
        held: hold.is_some(),
        window: PhaseWindow {
            started_ms,
            loaded_ms,
            settled_ms,
        },
    };
    Ok(Phase { outcome, report })
}

fn bar(progress: bool, len: u64, name: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{prefix:>7} [{elapsed_precise}] {wide_bar} {pos}/{len} readings ({per_sec})",
    )
    .expect("the template is a valid constant");
    bar.set_style(style);
    bar.set_prefix(name.to_string());
    bar
}

fn bar_spinner(progress: bool, message: String) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(message);
    spinner.enable_steady_tick(Duration::from_millis(200));
    spinner
}

/// Microseconds from `from` to `to`.
fn micros(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX)
}

fn end_to_end(sent: &[Sent], recommended: &HashMap<Uuid, DateTime<Utc>>) -> Summary {
    let mut recorder = Recorder::new();
    for s in sent {
        if let Some(at) = recommended.get(&s.event_id) {
            recorder.record_micros(micros(s.sent_at, *at));
        }
    }
    recorder.summary()
}

fn outbox_age(rows: &[OutboxTimes]) -> Summary {
    let mut recorder = Recorder::new();
    for row in rows {
        if let Some(sent_at) = row.sent_at {
            recorder.record_micros(micros(row.created_at, sent_at));
        }
    }
    recorder.summary()
}

/// Rows the relay published per second: from the first commit to the last acknowledgement.
fn relay_rate(rows: &[OutboxTimes]) -> f64 {
    let first = rows.iter().map(|r| r.created_at).min();
    let last = rows.iter().filter_map(|r| r.sent_at).max();
    match (first, last) {
        (Some(first), Some(last)) if last > first => {
            let secs = micros(first, last) as f64 / 1e6;
            rows.iter().filter(|r| r.sent_at.is_some()).count() as f64 / secs
        }
        _ => 0.0,
    }
}

async fn ceilings(
    config: &Config,
    run_id: &str,
    partitions: i32,
    single: Lanes,
    batch: Lanes,
) -> Result<Ceilings> {
    let fresh = |lanes: Lanes| -> Lanes {
        let renew = |p: Planned| Planned {
            seq: p.seq,
            reading: p.reading.with_new_id(),
        };
        lanes
            .into_iter()
            .map(|lane| lane.into_iter().map(renew).collect())
            .collect()
    };
    let single = fresh(single);
    let batch = fresh(batch);
    let messages: Vec<_> = single
        .iter()
        .chain(&batch)
        .flatten()
        .map(|p| p.reading.clone())
        .collect();

    let scratch = ScratchDatabase::create(&config.database_url, run_id, config.pool_size).await?;
    let single_rate =
        ceiling::single_transactions(&scratch.pool, &config.topic, single, config.phase_limit())
            .await;
    let batch_rate = match single_rate {
        Ok(_) => {
            ceiling::batch_inserts(
                &scratch.pool,
                &config.topic,
                batch,
                config.batch_size,
                config.phase_limit(),
            )
            .await
        }
        Err(_) => Ok(Rate::default()),
    };
    scratch.drop_database().await?;
    let kafka = ceiling::kafka_producer(
        &config.kafka_bootstrap,
        run_id,
        partitions,
        &messages,
        config.phase_limit(),
    )
    .await?;
    Ok(Ceilings {
        postgres_single: single_rate?,
        postgres_batch: batch_rate?,
        kafka_producer: kafka,
    })
}

async fn no_loss(
    probe: &Probe,
    outcomes: &[&PhaseOutcome],
    kafka_messages: i64,
    config: &Config,
) -> Result<NoLossCheck> {
    let ids: Vec<Uuid> = outcomes
        .iter()
        .flat_map(|o| o.accepted.iter().map(|s| s.event_id))
        .collect();
    let accepted = ids.len() as i64;
    let distinct = ids.iter().collect::<HashSet<_>>().len() as i64;
    let failed: usize = outcomes.iter().map(|o| o.failed).sum();

    let recommendations = probe.wait_recommended(&ids, config.settle_limit()).await?;
    let readings = probe.count(Table::Readings, &ids).await?;
    let outbox = probe.outbox_times(&ids).await?;
    let outbox_rows = outbox.len() as i64;
    let outbox_unsent = outbox.iter().filter(|r| r.sent_at.is_none()).count() as i64;

    let mut problems = Vec::new();
    let mut expect = |what: &str, found: i64| {
        if found != accepted {
            problems.push(format!("{what}: {found}, expected {accepted}"));
        }
    };
    expect("distinct accepted event ids", distinct);
    expect("rows in readings", readings);
    expect("rows in outbox", outbox_rows);
    expect("messages added to the topic", kafka_messages);
    expect("recommendations", recommendations);
    if outbox_unsent > 0 {
        problems.push(format!("{outbox_unsent} outbox rows never sent"));
    }
    if accepted == 0 {
        problems.push("billing accepted no reading".into());
    }
    Ok(NoLossCheck {
        passed: problems.is_empty(),
        accepted,
        distinct,
        readings,
        outbox_rows,
        outbox_unsent,
        kafka_messages,
        recommendations,
        failed,
        problems,
    })
}

/// Samples a process's resident memory in the background; reports the largest sample.
struct RssSampler {
    task: tokio::task::JoinHandle<u64>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut max_kib = 0;
            loop {
                max_kib = max_kib.max(rss_kib(pid).unwrap_or(0));
                tokio::select! {
                    _ = tokio::time::sleep(RSS_EVERY) => {}
                    _ = stopped.changed() => return max_kib,
                }
            }
        });
        Self { task, stop }
    }

    /// Largest resident memory seen, MiB.
    async fn stop(self) -> f64 {
        // The sampler returns as soon as this is sent; a closed channel means it already ended.
        self.stop.send(true).ok();
        let max_kib = self.task.await.unwrap_or(0);
        max_kib as f64 / 1024.0
    }
}

/// `VmRSS` of a process, KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
