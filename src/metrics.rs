//! Prometheus metrics for `/metrics`, registered once at start.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub site: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteLabels {
    pub site: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeedbackLabels {
    pub source: String,
    pub outcome: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub logins: Family<OutcomeLabels, Counter>,
    pub contacts: Gauge<u64, AtomicU64>,
    pub search_docs: Gauge<u64, AtomicU64>,
    pub imported_rows: Counter,
    pub uptime_seconds: Gauge<u64, AtomicU64>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub queue_waiting: Family<SiteLabels, Gauge<u64, AtomicU64>>,
    pub queue_oldest_age_seconds: Gauge<u64, AtomicU64>,
    pub feedback: Family<FeedbackLabels, Counter>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mailstead");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method and status",
            http_requests.clone(),
        );
        let logins = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "logins",
            "Console login attempts by outcome",
            logins.clone(),
        );
        let contacts = Gauge::<u64, AtomicU64>::default();
        registry.register("contacts", "Contacts in the store", contacts.clone());
        let search_docs = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "search_documents",
            "Documents in the search index",
            search_docs.clone(),
        );
        let imported_rows = Counter::default();
        registry.register(
            "imported_rows",
            "CSV rows processed by imports",
            imported_rows.clone(),
        );
        let uptime_seconds = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "uptime_seconds",
            "Seconds since the server started",
            uptime_seconds.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "deliveries",
            "Delivery attempts by receiving site and outcome (sent, deferred, bounced, failed)",
            deliveries.clone(),
        );
        let queue_waiting = Family::<SiteLabels, Gauge<u64, AtomicU64>>::default();
        registry.register(
            "queue_waiting",
            "Recipients waiting for delivery, by receiving site",
            queue_waiting.clone(),
        );
        let queue_oldest_age_seconds = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "queue_oldest_age_seconds",
            "Age of the oldest waiting recipient",
            queue_oldest_age_seconds.clone(),
        );
        let feedback = Family::<FeedbackLabels, Counter>::default();
        registry.register(
            "feedback_messages",
            "Feedback received (bounce listener, mailbox, webhooks), by source and outcome",
            feedback.clone(),
        );
        Metrics {
            feedback,
            registry,
            http_requests,
            logins,
            contacts,
            search_docs,
            imported_rows,
            uptime_seconds,
            deliveries,
            queue_waiting,
            queue_oldest_age_seconds,
        }
    }

    pub fn count_feedback(&self, source: &str, outcome: &str) {
        self.feedback
            .get_or_create(&FeedbackLabels {
                source: source.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
