//! Reading the Secrets a resource references. Values are used by the operator itself (the AMQP
//! URI to declare the topology, the gateway's basic auth) and never written anywhere; the
//! workloads get `secretKeyRef`s instead.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::resource::{SecretKeyRef, SecretRef};

/// Key of the gateway Secret holding the user name (OpenFaaS's own convention).
pub const GATEWAY_USER_KEY: &str = "basic-auth-user";

/// Key of the gateway Secret holding the password.
pub const GATEWAY_PASSWORD_KEY: &str = "basic-auth-password";

/// A referenced Secret or key that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretError {
    /// The Secret does not exist.
    #[error("secret {namespace}/{name} not found")]
    NotFound {
        /// Namespace looked in.
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// The Secret exists but lacks the key, or the value is not UTF-8.
    #[error("secret {namespace}/{name} has no text key {key}")]
    MissingKey {
        /// Namespace looked in.
        namespace: String,
        /// Secret name.
        name: String,
        /// The key.
        key: String,
    },
    /// The API server could not be asked.
    #[error("cannot read secret {namespace}/{name}: {reason}")]
    Unreadable {
        /// Namespace looked in.
        namespace: String,
        /// Secret name.
        name: String,
        /// What the client said.
        reason: String,
    },
}

/// Basic-auth credentials of the OpenFaaS gateway.
#[derive(Clone)]
pub struct BasicAuth {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Reads Secrets of one namespace.
pub struct SecretReader {
    api: Api<Secret>,
    namespace: String,
}

impl SecretReader {
    /// A reader for `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
        }
    }

    /// The text value of one key.
    pub async fn value(&self, reference: &SecretKeyRef) -> Result<String, SecretError> {
        let secret = self.secret(&reference.name).await?;
        text(&secret, &reference.key).ok_or_else(|| SecretError::MissingKey {
            namespace: self.namespace.clone(),
            name: reference.name.clone(),
            key: reference.key.clone(),
        })
    }

    /// The gateway's basic auth, from the `basic-auth-user` and `basic-auth-password` keys.
    pub async fn basic_auth(&self, reference: &SecretRef) -> Result<BasicAuth, SecretError> {
        let secret = self.secret(&reference.name).await?;
        let key = |key: &str| {
            text(&secret, key).ok_or_else(|| SecretError::MissingKey {
                namespace: self.namespace.clone(),
                name: reference.name.clone(),
                key: key.to_string(),
            })
        };
        Ok(BasicAuth {
            user: key(GATEWAY_USER_KEY)?,
            password: key(GATEWAY_PASSWORD_KEY)?,
        })
    }

    async fn secret(&self, name: &str) -> Result<Secret, SecretError> {
        match self.api.get_opt(name).await {
            Ok(Some(secret)) => Ok(secret),
            Ok(None) => Err(SecretError::NotFound {
                namespace: self.namespace.clone(),
                name: name.to_string(),
            }),
            Err(error) => Err(SecretError::Unreadable {
                namespace: self.namespace.clone(),
                name: name.to_string(),
                reason: error.to_string(),
            }),
        }
    }
}

/// A key's value from `data` (base64-decoded by k8s-openapi) or `stringData`.
fn text(secret: &Secret, key: &str) -> Option<String> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(bytes.0.clone()).ok();
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    #[test]
    fn values_are_read_from_data() {
        let secret = Secret {
            data: Some(BTreeMap::from([(
                "uri".into(),
                ByteString(b"amqp://h".to_vec()),
            )])),
            ..Secret::default()
        };

        assert_eq!(text(&secret, "uri").as_deref(), Some("amqp://h"));
        assert_eq!(text(&secret, "other"), None);
    }

    #[test]
    fn debug_output_hides_the_password() {
        let auth = BasicAuth {
            user: "admin".into(),
            password: "hunter2".into(),
        };

        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
