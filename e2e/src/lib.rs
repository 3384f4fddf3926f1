//! Support for the end-to-end tests: the platform's own binaries (billing, recommender, carbon
//! calculator) started as real child processes, configured like `dev/up` configures them, on a
//! database, topic and vhost of the test's own.
//!
//! The binaries are the ones `cargo test --workspace` (or `cargo build --workspace`) leaves in
//! the target folder next to this test's executable.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// One of the platform's binaries running as a child process, killed when dropped.
pub struct Process {
    name: &'static str,
    // Behind a lock so a test can kill and restart it while other tasks use the platform.
    child: tokio::sync::Mutex<Option<Child>>,
    /// File the process logs to.
    pub log: PathBuf,
    env: Vec<(String, String)>,
}

impl Process {
    /// Starts `name` with `env`, logging to `log_dir/<name>.log` (appending across restarts).
    pub async fn start(
        name: &'static str,
        env: Vec<(String, String)>,
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let process = Self {
            name,
            child: tokio::sync::Mutex::new(None),
            log,
            env,
        };
        process.spawn().await?;
        Ok(process)
    }

    async fn spawn(&self) -> anyhow::Result<()> {
        let binary = binary(self.name)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("open {}", self.log.display()))?;
        let child = Command::new(&binary)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("LOG_FORMAT", "json")
            // Per-item lines are debug; the tests follow single readings through the logs.
            .env(
                "RUST_LOG",
                "info,recommender=debug,carbon_calculator=debug,tower_http=debug",
            )
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        *self.child.lock().await = Some(child);
        Ok(())
    }

    /// Kills the process with SIGKILL: no shutdown code runs, as in a crash.
    pub async fn kill(&self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.lock().await.take() {
            child
                .kill()
                .await
                .with_context(|| format!("kill {}", self.name))?;
        }
        Ok(())
    }

    /// Starts the process again with the same settings.
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.spawn().await
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The path of a workspace binary next to the running test executable.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locate the test executable")?;
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test executable has no target folder above it")?;
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is not built; run `cargo build --workspace` (dev/test builds it)",
            path.display()
        );
    }
    Ok(path)
}

/// A loopback port nobody listens on now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Polls `url` until it answers 2xx, or fails after `timeout` naming the process's log.
pub async fn wait_healthy(url: &str, timeout: Duration, log: &Path) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: String = tail.lines().rev().take(20).collect::<Vec<_>>().join("\n");
            bail!("{url} did not become healthy within {timeout:?}; last log lines:\n{tail}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
