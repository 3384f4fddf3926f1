//! The Cleanup arm, run once the resource is being deleted and before its finalizer goes.
//!
//! The carbon function is always removed (it lives outside the resource's namespace, where
//! owner references cannot reach); the Kafka topics and RabbitMQ topology only under
//! `deletionPolicy: Delete`. The workloads in the resource's namespace go through Kubernetes
//! garbage collection (owner references).
//!
//! Each part is retried with backoff until `Settings::cleanup_timeout`. Then the controller
//! gives up: it publishes a Warning Event naming what was left behind and lets the finalizer be
//! removed, because a finalizer that never goes blocks the deletion of the whole namespace.

use std::future::Future;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tokio::time::Instant;
use tracing::{info, warn};

use super::secrets::SecretReader;
use super::{Context, Error, Result, carbon};
use crate::EnergyPlatform;
use crate::provision::RabbitProvisioner;
use crate::provision::rabbitmq::dead_letter_queue;
use crate::resource::DeletionPolicy;

/// First wait between two cleanup attempts; it doubles up to [`MAX_RETRY_WAIT`].
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(500);

/// Longest wait between two cleanup attempts.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

/// Shortest time one attempt gets, even past the deadline: every part is tried at least once.
const MIN_ATTEMPT: Duration = Duration::from_secs(2);

/// Removes what the resource created outside Kubernetes, within the cleanup bound.
pub(super) async fn cleanup(platform: &EnergyPlatform, ctx: &Context) -> Result<Action> {
    let namespace = platform
        .namespace()
        .ok_or_else(|| Error::NotNamespaced(platform.name_any()))?;
    let deadline = Instant::now() + ctx.settings.cleanup_timeout;
    let spec = &platform.spec;
    let delete_external = spec.deletion_policy == DeletionPolicy::Delete;

    // The three parts are independent; running them together lets each use the whole bound.
    let function = retry_until(deadline, "carbon function", || {
        delete_function(platform, ctx, &namespace)
    });
    let topics = async {
        if delete_external {
            retry_until(deadline, "kafka topics", || delete_topics(platform, ctx)).await
        } else {
            Ok(())
        }
    };
    let rabbit = async {
        if delete_external {
            retry_until(deadline, "rabbitmq topology", || {
                delete_rabbit(platform, ctx, &namespace)
            })
            .await
        } else {
            Ok(())
        }
    };
    let (function, topics, rabbit) = tokio::join!(function, topics, rabbit);

    let mut left_behind = Vec::new();
    if let Err(reason) = function {
        let f = &spec.carbon_function;
        left_behind.push(format!(
            "carbon function {}/{} ({reason})",
            f.namespace, f.name
        ));
    }
    if let Err(reason) = topics {
        let topic = &spec.kafka.topic;
        left_behind.push(format!("kafka topics {topic} and {topic}.dlq ({reason})"));
    }
    if let Err(reason) = rabbit {
        let r = &spec.rabbitmq;
        left_behind.push(format!(
            "rabbitmq exchanges {} and {}, queues {} and {} ({reason})",
            r.exchange,
            r.dead_letter_exchange,
            r.alert_queue,
            dead_letter_queue(r)
        ));
    }
    report(platform, ctx, delete_external, left_behind).await;
    Ok(Action::await_change())
}

async fn report(platform: &EnergyPlatform, ctx: &Context, deleted: bool, left_behind: Vec<String>) {
    if left_behind.is_empty() {
        let note = if deleted {
            "removed the carbon function, kafka topics and rabbitmq topology \
             (deletionPolicy Delete)"
        } else {
            "removed the carbon function; kept kafka topics and rabbitmq topology \
             (deletionPolicy Retain)"
        };
        info!(deleted, "cleanup complete");
        ctx.event(platform, EventType::Normal, "CleanedUp", note.to_string())
            .await;
    } else {
        let note = format!(
            "gave up after {:?}; left behind: {}",
            ctx.settings.cleanup_timeout,
            left_behind.join("; ")
        );
        warn!(left_behind = %note, "cleanup incomplete; removing the finalizer anyway");
        ctx.event(platform, EventType::Warning, "CleanupIncomplete", note)
            .await;
    }
}

async fn delete_function(platform: &EnergyPlatform, ctx: &Context, namespace: &str) -> Result<()> {
    let auth = match &platform.spec.carbon_function.gateway_auth_secret_ref {
        Some(reference) => {
            let reader = SecretReader::new(ctx.client.clone(), namespace);
            Some(reader.basic_auth(reference).await?)
        }
        None => None,
    };
    carbon::delete(platform, ctx, auth.as_ref()).await
}

async fn delete_topics(platform: &EnergyPlatform, ctx: &Context) -> Result<()> {
    let kafka = ctx.kafka(&platform.spec.kafka.bootstrap_servers)?;
    kafka.delete(&platform.spec.kafka).await?;
    Ok(())
}

async fn delete_rabbit(platform: &EnergyPlatform, ctx: &Context, namespace: &str) -> Result<()> {
    let reader = SecretReader::new(ctx.client.clone(), namespace);
    let uri = reader.value(&platform.spec.rabbitmq.uri_secret_ref).await?;
    let rabbit = RabbitProvisioner::connect(&uri).await?;
    rabbit.delete(&platform.spec.rabbitmq).await?;
    Ok(())
}

/// Calls `attempt` until it succeeds or the next try would start after `deadline`; the error
/// text of the last attempt when it gives up.
async fn retry_until<F, Fut>(deadline: Instant, what: &str, mut attempt: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut wait = FIRST_RETRY_WAIT;
    loop {
        let limit = deadline
            .saturating_duration_since(Instant::now())
            .max(MIN_ATTEMPT);
        let reason = match tokio::time::timeout(limit, attempt()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {limit:?}"),
        };
        if Instant::now() + wait >= deadline {
            return Err(reason);
        }
        warn!(part = what, %reason, ?wait, "cleanup failed; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_RETRY_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_part_that_keeps_failing_is_given_up_at_the_deadline() {
        let calls = AtomicU32::new(0);
        let deadline = Instant::now() + Duration::from_secs(5);

        let result = retry_until(deadline, "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::NotConverged("broker down".into()))
        })
        .await;

        assert!(result.expect_err("gives up").contains("broker down"));
        assert!(calls.load(Ordering::SeqCst) > 1, "retried before giving up");
        assert!(
            Instant::now() <= deadline,
            "gave up without waiting past the deadline"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_part_that_recovers_succeeds() {
        let calls = AtomicU32::new(0);
        let deadline = Instant::now() + Duration::from_secs(60);

        let result = retry_until(deadline, "test", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(Error::NotConverged("not yet".into())),
                _ => Ok(()),
            }
        })
        .await;

        assert_eq!(result, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
