//! The test OpenFaaS provider (`dev/faas-provider`, built on faas-provider's own router and
//! types, standing in for faas-netes, which cannot be built here): built once per source hash
//! by `dev/faas-provider/build.sh`, started per test on a free port with its own basic-auth
//! credentials, writing functions into the test's namespace.

use std::path::PathBuf;
use std::process::Stdio;

use energy_testkit::unique_name;
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

use super::{CONVERGE, eventually};

/// The built binary, shared by every test of the process.
static BINARY: OnceCell<PathBuf> = OnceCell::const_new();

/// A running provider; killed when dropped.
pub struct FaasProvider {
    /// Base URL, what a resource's `gatewayUrl` names.
    pub url: String,
    /// Basic-auth user.
    pub user: String,
    /// Basic-auth password.
    pub password: String,
    _child: Child,
}

impl FaasProvider {
    /// Starts a provider whose default function namespace is `namespace`.
    pub async fn start(namespace: &str) -> FaasProvider {
        let binary = BINARY.get_or_init(build).await;
        let secrets = std::env::temp_dir().join(unique_name("faas-provider"));
        std::fs::create_dir_all(&secrets).expect("a credentials folder");
        let password = unique_name("pw");
        std::fs::write(secrets.join("basic-auth-user"), "admin").expect("user file");
        std::fs::write(secrets.join("basic-auth-password"), &password).expect("password file");
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("an address").port()
        };
        let kubeconfig = std::env::var("EP_KUBECONFIG").expect("EP_KUBECONFIG is set");
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--kubeconfig", &kubeconfig])
            .args(["--function-namespace", namespace])
            .arg("--secret-mount-path")
            .arg(&secrets)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the test faas-provider starts");
        let provider = FaasProvider {
            url: format!("http://127.0.0.1:{port}"),
            user: "admin".into(),
            password,
            _child: child,
        };
        let http = reqwest::Client::new();
        eventually(
            "the faas-provider to answer /system/info",
            CONVERGE,
            || async {
                let response = provider.get(&http, "/system/info").await?;
                response.status().is_success().then_some(())
            },
        )
        .await;
        provider
    }

    /// `GET path` with the provider's credentials.
    pub async fn get(&self, http: &reqwest::Client, path: &str) -> Option<reqwest::Response> {
        http.get(format!("{}{path}", self.url))
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .ok()
    }
}

async fn build() -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../dev/faas-provider/build.sh");
    let output = Command::new("bash")
        .arg(script)
        .output()
        .await
        .expect("the build script runs");
    assert!(
        output.status.success(),
        "building the test faas-provider failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}
