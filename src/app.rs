//! The assembled appliance: settings, store, search index and the domain services, shared
//! by the HTTP layer, the control socket and background tasks.

use crate::accounts::Accounts;
use crate::config::Settings;
use crate::contacts::Contacts;
use crate::metrics::Metrics;
use crate::search::SearchIndex;
use crate::store::Store;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),
    #[error(transparent)]
    Account(#[from] crate::accounts::AccountError),
    #[error("{0}")]
    Setup(String),
}

pub struct App {
    pub settings: Settings,
    pub store: Arc<Store>,
    pub search: Arc<SearchIndex>,
    pub contacts: Arc<Contacts>,
    pub crm: Arc<crate::crm::Crm>,
    pub feedback: Arc<crate::feedback::Feedback>,
    pub subscriptions: Arc<crate::subscriptions::Subscriptions>,
    pub accounts: Accounts,
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    pub audit: Arc<crate::audit::Audit>,
    pub gdpr: Arc<crate::gdpr::Gdpr>,
    pub campaigns: Arc<crate::campaigns::Campaigns>,
    pub tracking: Arc<crate::tracking::Tracking>,
    pub forms: Arc<crate::forms::Forms>,
    pub segments: Arc<crate::segments::Segments>,
    pub metrics: Arc<Metrics>,
    pub started: std::time::Instant,
}

pub fn search_dir(settings: &Settings) -> PathBuf {
    settings.data_dir.join("search")
}

impl App {
    /// Opens the store (taking its lock), brings the search index up to date and builds the
    /// services. Used by the server and by the CLI commands that write.
    pub fn open(settings: Settings) -> Result<App, StartError> {
        let store = Arc::new(Store::open(&settings.data_dir)?);
        let search = Arc::new(SearchIndex::open(&search_dir(&settings), &store)?);
        let contacts = Arc::new(Contacts::new(store.clone(), search.clone()));
        let gdpr = Arc::new(crate::gdpr::Gdpr::new(
            store.clone(),
            search.clone(),
            contacts.clone(),
        ));
        // an erasure committed but its index segments and store pages were not rewritten yet
        // (a crash): finish that before anything else
        gdpr.finish_pending_purge()
            .map_err(|e| StartError::Setup(e.to_string()))?;
        let feedback = Arc::new(crate::feedback::Feedback::new(
            store.clone(),
            contacts.clone(),
            crate::feedback::Rules::from_settings(&settings.feedback),
            crate::delivery::Verp::new(&store.secret("verp")?, &settings.delivery.bounce_domain)
                .ok(),
        ));
        let links =
            crate::links::Links::for_appliance(&store, &settings).map_err(StartError::Setup)?;
        let subscriptions = Arc::new(crate::subscriptions::Subscriptions::new(
            store.clone(),
            contacts.clone(),
            links.clone(),
        ));
        let campaigns = Arc::new(crate::campaigns::Campaigns::new(store.clone(), &settings));
        let forms = Arc::new(crate::forms::Forms::new(
            store.clone(),
            contacts.clone(),
            &settings,
        )?);
        let tracking = Arc::new(crate::tracking::Tracking::new(
            store.clone(),
            links,
            campaigns.clone(),
        ));
        let accounts = Accounts::new(
            store.clone(),
            settings.login_attempts_per_minute,
            settings.session_ttl_hours,
        )?;
        let webhooks = Arc::new(crate::webhooks::Webhooks::new(&settings, store.clone()));
        let audit = Arc::new(crate::audit::Audit::new(store.clone())?);
        let segments = Arc::new(crate::segments::Segments::new(store.clone()));
        campaigns.set_segments(segments.clone());
        let crm = Arc::new(crate::crm::Crm::new(store.clone(), contacts.clone()));
        crm.add_timeline_source(Arc::new(crate::campaigns::timeline::MailTimeline::new(
            store.clone(),
            search.clone(),
        )));
        gdpr.register(Arc::new(crate::crm::personal::LeadPersonalData::new(
            store.clone(),
        )));
        Ok(App {
            segments,
            gdpr,
            webhooks,
            audit,
            campaigns,
            tracking,
            forms,
            settings,
            store,
            search,
            contacts,
            crm,
            feedback,
            subscriptions,
            accounts,
            metrics: Arc::new(Metrics::new()),
            started: std::time::Instant::now(),
        })
    }

    /// Store and index are usable.
    pub fn healthy(&self) -> bool {
        self.store.check().is_ok() && self.search.is_usable()
    }
}
