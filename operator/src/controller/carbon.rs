//! Converging and removing the carbon function in the mode `spec.carbonFunction.mode` names:
//! through the OpenFaaS provider API, as faas-netes-shaped objects, or as a `Function` object.
//! The objects live in the function namespace, usually not the resource's, so they are removed
//! explicitly on cleanup rather than by owner references.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, DynamicObject};
use kube::{Api, Resource, ResourceExt};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

use super::apply::{Applied, apply_if_changed};
use super::secrets::BasicAuth;
use super::{Context, Error, Result};
use crate::EnergyPlatform;
use crate::resource::CarbonDeployMode;
use crate::workloads::function::{
    DeleteFunctionRequest, FunctionStatus, function_api_resource, function_deployment,
    function_deployment_request, function_object, function_service,
};
use crate::workloads::{OWNER_ANNOTATION, owner_key};

/// Brings the function to the spec; returns a line per change made.
pub(super) async fn ensure(
    platform: &EnergyPlatform,
    ctx: &Context,
    auth: Option<&BasicAuth>,
) -> Result<Vec<String>> {
    let spec = &platform.spec.carbon_function;
    match spec.mode {
        CarbonDeployMode::Gateway => {
            let gateway = Gateway::new(ctx, platform, auth)?;
            Ok(gateway.ensure(platform).await?.into_iter().collect())
        }
        CarbonDeployMode::Deployment => {
            let mut changes = Vec::new();
            let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &spec.namespace);
            let applied = apply_if_changed(&deployments, function_deployment(platform))
                .await
                .map_err(|e| Error::kube(format!("apply deployment {}", spec.name), e))?;
            note(
                &mut changes,
                "deployment",
                &spec.namespace,
                &spec.name,
                applied,
            );
            let services = Api::<Service>::namespaced(ctx.client.clone(), &spec.namespace);
            let applied = apply_if_changed(&services, function_service(platform))
                .await
                .map_err(|e| Error::kube(format!("apply service {}", spec.name), e))?;
            note(
                &mut changes,
                "service",
                &spec.namespace,
                &spec.name,
                applied,
            );
            Ok(changes)
        }
        CarbonDeployMode::FunctionResource => {
            let mut changes = Vec::new();
            let functions = function_objects(ctx, &spec.namespace);
            let applied = apply_if_changed(&functions, function_object(platform))
                .await
                .map_err(|e| Error::kube(format!("apply function {}", spec.name), e))?;
            note(
                &mut changes,
                "function",
                &spec.namespace,
                &spec.name,
                applied,
            );
            Ok(changes)
        }
    }
}

/// Removes the function; absent is fine. Objects another owner put in its place are left.
pub(super) async fn delete(
    platform: &EnergyPlatform,
    ctx: &Context,
    auth: Option<&BasicAuth>,
) -> Result<()> {
    let spec = &platform.spec.carbon_function;
    match spec.mode {
        CarbonDeployMode::Gateway => Gateway::new(ctx, platform, auth)?.delete(platform).await,
        CarbonDeployMode::Deployment => {
            let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &spec.namespace);
            delete_owned(&deployments, platform, &spec.name).await?;
            let services = Api::<Service>::namespaced(ctx.client.clone(), &spec.namespace);
            delete_owned(&services, platform, &spec.name).await
        }
        CarbonDeployMode::FunctionResource => {
            let functions = function_objects(ctx, &spec.namespace);
            delete_owned(&functions, platform, &spec.name).await
        }
    }
}

fn function_objects(ctx: &Context, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(ctx.client.clone(), namespace, &function_api_resource())
}

fn note(changes: &mut Vec<String>, kind: &str, namespace: &str, name: &str, applied: Applied) {
    match applied {
        Applied::Unchanged => {}
        Applied::Created => changes.push(format!("created {kind} {namespace}/{name}")),
        Applied::Updated => changes.push(format!("updated {kind} {namespace}/{name}")),
    }
}

/// Deletes `name` if it exists and carries this resource's owner annotation. A missing
/// resource type (no Function CRD installed) counts as absent.
async fn delete_owned<K>(api: &Api<K>, platform: &EnergyPlatform, name: &str) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let live = match api.get_opt(name).await {
        Ok(live) => live,
        Err(kube::Error::Api(status)) if status.is_not_found() => None,
        Err(e) => return Err(Error::kube(format!("read {name} before deleting it"), e)),
    };
    let Some(live) = live else {
        return Ok(());
    };
    if live.annotations().get(OWNER_ANNOTATION) != Some(&owner_key(platform)) {
        return Ok(());
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(e) => Err(Error::kube(format!("delete {name}"), e)),
    }
}

/// The OpenFaaS provider API behind the gateway.
struct Gateway<'a> {
    http: &'a reqwest::Client,
    base: String,
    auth: Option<&'a BasicAuth>,
}

impl<'a> Gateway<'a> {
    fn new(
        ctx: &'a Context,
        platform: &EnergyPlatform,
        auth: Option<&'a BasicAuth>,
    ) -> Result<Self> {
        // The CRD's CEL rule makes gatewayUrl required in Gateway mode.
        let base = platform
            .spec
            .carbon_function
            .gateway_url
            .clone()
            .ok_or_else(|| Error::Gateway {
                url: String::new(),
                reason: "carbonFunction.gatewayUrl is not set".into(),
            })?;
        Ok(Self {
            http: &ctx.http,
            base: base.trim_end_matches('/').to_string(),
            auth,
        })
    }

    /// Deploys or updates the function when the provider reports something else.
    async fn ensure(&self, platform: &EnergyPlatform) -> Result<Option<String>> {
        let desired = function_deployment_request(platform);
        let status_path = format!(
            "/system/function/{}?namespace={}",
            desired.service, desired.namespace
        );
        let response = self.send(Method::GET, &status_path, None).await?;
        let method = match response.status() {
            StatusCode::NOT_FOUND => Method::POST,
            status if status.is_success() => {
                let deployed: FunctionStatus = response
                    .json()
                    .await
                    .map_err(|e| self.error(&status_path, e))?;
                if deployed.satisfies(&desired) {
                    return Ok(None);
                }
                Method::PUT
            }
            _ => return Err(self.refused(&status_path, response).await),
        };

        let body = serde_json::to_value(&desired).unwrap_or_default();
        let response = self
            .send(method.clone(), "/system/functions", Some(body))
            .await?;
        if !response.status().is_success() {
            return Err(self.refused("/system/functions", response).await);
        }
        let verb = if method == Method::POST {
            "deployed"
        } else {
            "updated"
        };
        Ok(Some(format!(
            "{verb} function {}/{} through the gateway",
            desired.namespace, desired.service
        )))
    }

    async fn delete(&self, platform: &EnergyPlatform) -> Result<()> {
        let spec = &platform.spec.carbon_function;
        let request = DeleteFunctionRequest {
            function_name: spec.name.clone(),
            namespace: spec.namespace.clone(),
        };
        let body = serde_json::to_value(&request).unwrap_or_default();
        let response = self
            .send(Method::DELETE, "/system/functions", Some(body))
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(()),
            status if status.is_success() => Ok(()),
            _ => Err(self.refused("/system/functions", response).await),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<reqwest::Response> {
        let mut request: RequestBuilder = self.http.request(method, format!("{}{path}", self.base));
        if let Some(auth) = self.auth {
            request = request.basic_auth(&auth.user, Some(&auth.password));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.map_err(|e| self.error(path, e))
    }

    async fn refused(&self, path: &str, response: reqwest::Response) -> Error {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        self.error(path, format!("{status}: {}", text.trim()))
    }

    fn error(&self, path: &str, reason: impl ToString) -> Error {
        Error::Gateway {
            url: format!("{}{}", self.base, path.split('?').next().unwrap_or(path)),
            reason: reason.to_string(),
        }
    }
}
