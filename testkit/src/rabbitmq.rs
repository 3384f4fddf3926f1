//! RabbitMQ: every test gets a virtual host of its own, created through the management API.

use lapin::{Connection, ConnectionProperties};
use reqwest::Url;
use serde_json::json;

use crate::{Error, Result, service_var, unique_name};

const SERVICE: &str = "RabbitMQ";
const AMQP_VAR: &str = "EP_AMQP_URL";
const API_VAR: &str = "EP_RABBITMQ_API";

/// A new, empty vhost on the dev broker, on which the broker's user has every permission.
pub struct TestVhost {
    /// Vhost name.
    pub name: String,
    /// AMQP URL that opens connections on this vhost.
    pub amqp_url: String,
    api: ManagementApi,
}

impl TestVhost {
    /// Creates a vhost named after `prefix` and grants the URL's user full rights on it.
    pub async fn create(prefix: &str) -> Result<Self> {
        let amqp = service_var(SERVICE, AMQP_VAR)?;
        let api = ManagementApi::from_env()?;
        let name = unique_name(prefix);

        api.put(&format!("vhosts/{name}"), json!({})).await?;
        let permissions = json!({ "configure": ".*", "write": ".*", "read": ".*" });
        api.put(&format!("permissions/{name}/{}", api.user), permissions)
            .await?;

        let amqp_url = with_vhost(&amqp, &name);
        Ok(Self {
            name,
            amqp_url,
            api,
        })
    }

    /// Opens an AMQP connection on the vhost.
    pub async fn connect(&self) -> Result<Connection> {
        Connection::connect(&self.amqp_url, ConnectionProperties::default())
            .await
            .map_err(|e| Error::unreachable(SERVICE, redact(&self.amqp_url), e))
    }

    /// Reads `path` under `/api/` as JSON (for example `queues/<vhost>/<queue>`).
    pub async fn api_get(&self, path: &str) -> Result<serde_json::Value> {
        self.api.get(path).await
    }
}

/// The management HTTP API, with the credentials taken out of its URL.
struct ManagementApi {
    base: Url,
    user: String,
    password: String,
    http: reqwest::Client,
}

impl ManagementApi {
    fn from_env() -> Result<Self> {
        let raw = service_var(SERVICE, API_VAR)?;
        let mut base =
            Url::parse(&raw).map_err(|e| Error::refused(SERVICE, format!("parse {API_VAR}"), e))?;
        let user = base.username().to_string();
        let password = base.password().unwrap_or_default().to_string();
        // Both setters only fail for URLs that cannot carry credentials, and this one did.
        base.set_username("").ok();
        base.set_password(None).ok();
        crate::install_crypto_provider();
        Ok(Self {
            base,
            user,
            password,
            http: reqwest::Client::new(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/{path}", self.base.as_str().trim_end_matches('/'))
    }

    async fn put(&self, path: &str, body: serde_json::Value) -> Result<()> {
        let response = self
            .http
            .put(self.url(path))
            .basic_auth(&self.user, Some(&self.password))
            .json(&body)
            .send()
            .await
            .map_err(|e| Error::unreachable(SERVICE, self.base.as_str(), e))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(Error::refused(
                SERVICE,
                format!("PUT /api/{path}"),
                format!("{status} {text}"),
            ));
        }
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<serde_json::Value> {
        let response = self
            .http
            .get(self.url(path))
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .map_err(|e| Error::unreachable(SERVICE, self.base.as_str(), e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::refused(SERVICE, format!("GET /api/{path}"), status));
        }
        response
            .json()
            .await
            .map_err(|e| Error::refused(SERVICE, format!("GET /api/{path}"), e))
    }
}

/// Replaces the vhost (the path) of an AMQP URL.
fn with_vhost(amqp_url: &str, vhost: &str) -> String {
    let authority_end = amqp_url.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match amqp_url[authority_end..].find('/') {
        Some(slash) => &amqp_url[..authority_end + slash],
        None => amqp_url,
    };
    format!("{base}/{vhost}")
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_password(None).ok();
            parsed.to_string()
        }
        Err(_) => "<unparseable AMQP URL>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_default_vhost() {
        assert_eq!(
            with_vhost("amqp://g:g@127.0.0.1:5/%2f", "t-1"),
            "amqp://g:g@127.0.0.1:5/t-1"
        );
    }

    #[test]
    fn adds_a_vhost_to_a_url_without_one() {
        assert_eq!(
            with_vhost("amqp://g:g@127.0.0.1:5", "t-1"),
            "amqp://g:g@127.0.0.1:5/t-1"
        );
    }

    #[test]
    fn error_addresses_do_not_show_passwords() {
        assert!(!redact("amqp://guest:secret@127.0.0.1:5/v").contains("secret"));
    }
}
