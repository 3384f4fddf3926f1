//! The fan-out of RED alerts to WebSocket subscribers.
//!
//! Each subscriber has a bounded queue. Publishing never waits: a subscriber whose queue is
//! full is too slow (or dead) and is dropped, which closes its socket; the others are not held
//! up. A small window of recent alert ids drops repeats, since RabbitMQ delivery and the replay
//! after a reconnect are at-least-once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use energy_contracts::{PropertyId, RedAlert};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Alerts a subscriber may have queued before it counts as too slow.
pub const SUBSCRIBER_QUEUE: usize = 64;

/// How many recent alert ids are remembered to drop repeats.
const RECENT_IDS: usize = 4096;

/// What a subscriber watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// One property.
    Property(PropertyId),
    /// Every property (an operator's view).
    All,
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    /// Alerts for this subscriber; ends when the hub drops a slow subscriber.
    pub alerts: mpsc::Receiver<Arc<RedAlert>>,
    id: u64,
    hub: AlertHub,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.id);
    }
}

struct Subscriber {
    filter: Filter,
    sender: mpsc::Sender<Arc<RedAlert>>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
    recent: HashSet<Uuid>,
    recent_order: VecDeque<Uuid>,
}

/// Shared handle to the hub; cheap to clone.
#[derive(Clone, Default)]
pub struct AlertHub {
    // Held only for short, non-async sections: insert, remove, and one pass of try_send.
    inner: Arc<Mutex<Inner>>,
}

impl AlertHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes to the alerts that match `filter`.
    pub fn subscribe(&self, filter: Filter) -> Subscription {
        let (sender, alerts) = mpsc::channel(SUBSCRIBER_QUEUE);
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.subscribers.insert(id, Subscriber { filter, sender });
        Subscription {
            alerts,
            id,
            hub: self.clone(),
        }
    }

    /// Sends `alert` to every matching subscriber, unless it was sent before. Returns how many
    /// subscribers got it.
    pub fn publish(&self, alert: RedAlert) -> usize {
        let alert = Arc::new(alert);
        let mut inner = self.lock();
        if !inner.recent.insert(alert.alert_id) {
            return 0;
        }
        inner.recent_order.push_back(alert.alert_id);
        if inner.recent_order.len() > RECENT_IDS
            && let Some(oldest) = inner.recent_order.pop_front()
        {
            inner.recent.remove(&oldest);
        }

        let mut delivered = 0;
        let mut too_slow = Vec::new();
        for (id, subscriber) in &inner.subscribers {
            let wanted = match &subscriber.filter {
                Filter::All => true,
                Filter::Property(property) => *property == alert.property_id,
            };
            if !wanted {
                continue;
            }
            match subscriber.sender.try_send(Arc::clone(&alert)) {
                Ok(()) => delivered += 1,
                Err(_) => too_slow.push(*id),
            }
        }
        for id in too_slow {
            tracing::warn!(
                subscriber = id,
                "alert subscriber too slow or gone; dropped"
            );
            inner.subscribers.remove(&id);
        }
        delivered
    }

    /// Subscribers connected now.
    pub fn subscribers(&self) -> usize {
        self.lock().subscribers.len()
    }

    fn remove(&self, id: u64) {
        self.lock().subscribers.remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves only counters and maps behind; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn alert(property: &str) -> RedAlert {
        RedAlert {
            alert_id: Uuid::now_v7(),
            event_id: Uuid::now_v7(),
            property_id: PropertyId::parse(property).expect("valid id"),
            kwh: 9.0,
            threshold: 5.0,
            reason: "above the absolute limit".into(),
            kg_co2e: 1.6,
            raised_at: Utc::now(),
        }
    }

    #[test]
    fn a_subscriber_gets_only_its_propertys_alerts() {
        let hub = AlertHub::new();
        let mut mine = hub.subscribe(Filter::Property(PropertyId::parse("a").expect("id")));
        hub.publish(alert("b"));
        hub.publish(alert("a"));
        assert_eq!(
            mine.alerts
                .try_recv()
                .expect("one alert")
                .property_id
                .as_str(),
            "a"
        );
        assert!(mine.alerts.try_recv().is_err());
    }

    #[test]
    fn an_all_properties_subscriber_gets_everything() {
        let hub = AlertHub::new();
        let mut all = hub.subscribe(Filter::All);
        hub.publish(alert("a"));
        hub.publish(alert("b"));
        assert!(all.alerts.try_recv().is_ok() && all.alerts.try_recv().is_ok());
    }

    #[test]
    fn a_repeated_alert_id_is_sent_once() {
        let hub = AlertHub::new();
        let mut all = hub.subscribe(Filter::All);
        let first = alert("a");
        assert_eq!(hub.publish(first.clone()), 1);
        assert_eq!(hub.publish(first), 0);
        assert!(all.alerts.try_recv().is_ok());
        assert!(all.alerts.try_recv().is_err());
    }

    #[test]
    fn a_slow_subscriber_is_dropped_without_holding_up_the_others() {
        let hub = AlertHub::new();
        let slow = hub.subscribe(Filter::All);
        let mut fast = hub.subscribe(Filter::All);
        for _ in 0..=SUBSCRIBER_QUEUE {
            hub.publish(alert("a"));
            fast.alerts.try_recv().expect("the fast one keeps up");
        }
        assert_eq!(hub.subscribers(), 1, "the slow subscriber is gone");
        drop(slow);
        assert_eq!(hub.subscribers(), 1);
    }

    #[test]
    fn dropping_a_subscription_unsubscribes() {
        let hub = AlertHub::new();
        let subscription = hub.subscribe(Filter::All);
        assert_eq!(hub.subscribers(), 1);
        drop(subscription);
        assert_eq!(hub.subscribers(), 0);
    }
}
