//! Leader election through a `coordination.k8s.io/v1` Lease, so that of several operator
//! replicas only one reconciles.
//!
//! A replica holds the lease while it keeps renewing it; another may take it once
//! `renewTime + leaseDurationSeconds` has passed. Every change is a replace carrying the
//! resourceVersion that was read (a compare-and-swap), so two replicas racing for an expired
//! lease cannot both win: the API server refuses the second write with a conflict. A leader
//! that cannot renew for a whole lease duration, or finds another holder, steps down.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::{debug, info, warn};

use crate::workloads::FIELD_MANAGER;

/// Why this replica stopped leading.
#[derive(Debug, thiserror::Error)]
pub enum LostLease {
    /// Another replica holds the lease now.
    #[error("lease {lease} is now held by {holder}")]
    TakenOver {
        /// Lease name.
        lease: String,
        /// The new holder.
        holder: String,
    },
    /// Renewing failed for a whole lease duration.
    #[error("could not renew lease {lease} for {duration:?}: {reason}")]
    NotRenewed {
        /// Lease name.
        lease: String,
        /// The lease duration.
        duration: Duration,
        /// The last failure.
        reason: String,
    },
}

/// Timing and identity of one replica's candidacy.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews, and how often a candidate tries.
    pub renew_interval: Duration,
}

/// What a look at the lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    /// This replica holds the lease (it just took or renewed it).
    Held,
    /// Another live replica holds it.
    HeldBy(String),
}

/// One replica's candidacy for a Lease.
pub struct LeaderElection {
    api: Api<Lease>,
    settings: LeaseSettings,
}

impl LeaderElection {
    /// A candidacy under `settings`.
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        let mut last_holder = None;
        loop {
            match self.attempt().await {
                Ok(Attempt::Held) => {
                    info!(lease = %self.settings.name, identity = %self.settings.identity,
                          "leadership acquired");
                    return;
                }
                Ok(Attempt::HeldBy(holder)) => {
                    if last_holder.as_ref() != Some(&holder) {
                        let lease = &self.settings.name;
                        info!(%lease, %holder, "waiting for the leader's lease");
                        last_holder = Some(holder);
                    }
                }
                Err(error) => {
                    warn!(lease = %self.settings.name, %error, "cannot read the lease; retrying")
                }
            }
            tokio::time::sleep(self.settings.renew_interval).await;
        }
    }

    /// Renews the lease until it is lost; returns why this replica must step down.
    pub async fn keep(&self) -> LostLease {
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.settings.renew_interval).await;
            match self.attempt().await {
                Ok(Attempt::Held) => {
                    debug!(lease = %self.settings.name, "lease renewed");
                    renewed = tokio::time::Instant::now();
                }
                Ok(Attempt::HeldBy(holder)) => {
                    return LostLease::TakenOver {
                        lease: self.settings.name.clone(),
                        holder,
                    };
                }
                Err(error) if renewed.elapsed() >= self.settings.lease_duration => {
                    return LostLease::NotRenewed {
                        lease: self.settings.name.clone(),
                        duration: self.settings.lease_duration,
                        reason: error.to_string(),
                    };
                }
                Err(error) => {
                    warn!(lease = %self.settings.name, %error, "lease renewal failed; retrying")
                }
            }
        }
    }

    /// Gives the lease up so another replica need not wait for it to expire.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        self.api
            .replace(&self.settings.name, &post_params(), &lease)
            .await?;
        info!(lease = %self.settings.name, "leadership released");
        Ok(())
    }

    /// Takes, renews, or finds the lease held by someone else.
    async fn attempt(&self) -> Result<Attempt, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            return self.create(now).await;
        };
        let spec = lease.spec.get_or_insert_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.settings.identity.as_str());
        if let Some(holder) = holder.clone().filter(|_| !ours && !expired(spec, now)) {
            return Ok(Attempt::HeldBy(holder));
        }

        if !ours {
            spec.holder_identity = Some(self.settings.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(self.duration_secs());
        match self
            .api
            .replace(&self.settings.name, &post_params(), &lease)
            .await
        {
            Ok(_) => Ok(Attempt::Held),
            // Someone wrote in between; whoever it was, the next look tells.
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(Attempt::HeldBy(
                holder.unwrap_or_else(|| "another replica".into()),
            )),
            Err(error) => Err(error),
        }
    }

    async fn create(&self, now: Timestamp) -> Result<Attempt, kube::Error> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.settings.name.clone()),
                namespace: Some(self.settings.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.settings.identity.clone()),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_duration_seconds: Some(self.duration_secs()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&post_params(), &lease).await {
            Ok(_) => Ok(Attempt::Held),
            Err(kube::Error::Api(status)) if status.is_already_exists() || status.is_conflict() => {
                Ok(Attempt::HeldBy("another replica".into()))
            }
            Err(error) => Err(error),
        }
    }

    fn duration_secs(&self) -> i32 {
        i32::try_from(self.settings.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    }
}

/// Whether the holder stopped renewing: no renewal on record, or its lease ran out.
fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let (Some(renewed), Some(duration)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return true;
    };
    match renewed
        .0
        .checked_add(SignedDuration::from_secs(i64::from(duration)))
    {
        Ok(until) => until < now,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(renewed_secs_ago: i64, duration: i32) -> (LeaseSpec, Timestamp) {
        let now = Timestamp::now();
        let renewed = now
            .checked_sub(SignedDuration::from_secs(renewed_secs_ago))
            .expect("in range");
        let spec = LeaseSpec {
            holder_identity: Some("a".into()),
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        };
        (spec, now)
    }

    #[test]
    fn a_lease_renewed_within_its_duration_is_live() {
        let (spec, now) = spec(5, 15);

        assert!(!expired(&spec, now));
    }

    #[test]
    fn a_lease_not_renewed_for_its_duration_may_be_taken() {
        let (spec, now) = spec(16, 15);

        assert!(expired(&spec, now));
    }

    #[test]
    fn a_lease_without_a_renewal_time_may_be_taken() {
        let spec = LeaseSpec::default();

        assert!(expired(&spec, Timestamp::now()));
    }
}
