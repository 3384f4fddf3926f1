//! Test support: finds the real services that `dev/services up` started and gives each test its
//! own corner of them, so integration tests run in parallel without touching each other.
//!
//! | service     | variable              | isolation per test                         |
//! |-------------|-----------------------|--------------------------------------------|
//! | PostgreSQL  | `EP_POSTGRES_URL`     | a new database ([`postgres::TestDatabase`])  |
//! | Kafka       | `EP_KAFKA_BOOTSTRAP`  | unique topic names ([`kafka::TestKafka`])    |
//! | RabbitMQ    | `EP_AMQP_URL`, `EP_RABBITMQ_API` | a new vhost ([`rabbitmq::TestVhost`]) |
//! | Kubernetes  | `EP_KUBECONFIG`       | a new namespace ([`kube::TestNamespace`])    |
//!
//! A missing or unreachable service is an error that names the service, the address and the
//! command that starts it; tests fail with it rather than skip. The variables come from
//! `source /tmp/energy-platform/env` (written by `dev/services up`), which `dev/test` does for you.

pub mod error;
pub mod kafka;
pub mod kube;
pub mod postgres;
pub mod rabbitmq;
pub mod services;

pub use error::{Error, Result};

use std::sync::Once;

/// A name no other test run uses: `prefix-<12 hex digits>`, valid as a database, topic, vhost
/// and namespace name.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

/// Installs ring as the process-wide rustls provider, once. Every client in the tree is built
/// against ring alone, but rustls still wants a default chosen before the first TLS handshake.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only when another provider was installed first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Reads a service's variable, or explains how to get it.
pub(crate) fn service_var(service: &'static str, var: &'static str) -> Result<String> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(Error::NotConfigured { service, var }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_keep_their_prefix() {
        let a = unique_name("orders");
        let b = unique_name("orders");
        assert_ne!(a, b);
        assert!(
            a.starts_with("orders-") && a.len() == "orders-".len() + 12,
            "{a}"
        );
    }

    #[test]
    fn unique_names_are_valid_kubernetes_namespace_names() {
        let name = unique_name("it");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[test]
    fn a_missing_variable_names_the_service_and_how_to_start_it() {
        let err = service_var("PostgreSQL", "EP_TESTKIT_SURELY_UNSET").expect_err("unset");
        let text = err.to_string();
        assert!(
            text.contains("PostgreSQL") && text.contains("EP_TESTKIT_SURELY_UNSET"),
            "{text}"
        );
        assert!(text.contains("dev/services up"), "{text}");
    }
}
