//! Kubernetes: every test gets a namespace of its own on the dev API server.
//!
//! No namespace controller runs there (no kube-controller-manager), so a deleted namespace
//! would stay Terminating; test namespaces are left behind with the throwaway etcd data.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::{Error, Result, service_var, unique_name};

const SERVICE: &str = "kube-apiserver";
const KUBECONFIG_VAR: &str = "EP_KUBECONFIG";

/// A client for the dev API server and a new namespace on it.
pub struct TestNamespace {
    /// Client with the admin credentials of the dev kubeconfig.
    pub client: Client,
    /// The namespace created for this test.
    pub name: String,
}

impl TestNamespace {
    /// Connects with `EP_KUBECONFIG` and creates a namespace named after `prefix`.
    pub async fn create(prefix: &str) -> Result<Self> {
        let client = client().await?;
        let name = unique_name(prefix);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|e| Error::refused(SERVICE, format!("create namespace {name}"), e))?;
        Ok(Self { client, name })
    }
}

/// A client for the dev API server, checked to answer.
pub async fn client() -> Result<Client> {
    let path = service_var(SERVICE, KUBECONFIG_VAR)?;
    crate::install_crypto_provider();
    let kubeconfig = Kubeconfig::read_from(&path)
        .map_err(|e| Error::refused(SERVICE, format!("read kubeconfig {path}"), e))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::refused(SERVICE, format!("load kubeconfig {path}"), e))?;
    let address = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| Error::unreachable(SERVICE, &address, e))?;
    client
        .apiserver_version()
        .await
        .map_err(|e| Error::unreachable(SERVICE, &address, e))?;
    Ok(client)
}
