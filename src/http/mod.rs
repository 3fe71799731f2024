//! The HTTPS server: routes, security headers, body limits, the embedded console and the
//! operational endpoints. Handlers translate between HTTP and the domain services; they hold
//! no business rules (those live in the services and in `policy`).

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod campaigns;
pub mod contacts;
pub mod crm;
pub mod error;
pub mod forms;
pub mod gdpr;
pub mod imports;
pub mod messages;
pub mod public;
pub mod segments;
pub mod suppressions;
pub mod tracking;
pub mod webhooks_in;
pub mod webhooks_out;

use crate::app::App;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use error::ApiError;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::ops::Deref;
use std::sync::Arc;
use utoipa::OpenApi;

pub struct Shared {
    pub app: App,
    pub api_limiter: DefaultKeyedRateLimiter<String>,
    /// Recipient pages (unsubscribe, preferences), per client address.
    pub public_limiter: DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// The delivery engine's front door; `None` in processes that do not send.
    pub outbound: Option<Arc<crate::outbound::Outbound>>,
    /// The campaign sender (test sends go through it); `None` where `outbound` is.
    pub campaign_runner: Option<Arc<crate::campaigns::runner::Runner>>,
}

impl Deref for Shared {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

pub type AppState = Arc<Shared>;

pub fn state(app: App, outbound: Option<Arc<crate::outbound::Outbound>>) -> AppState {
    let rps =
        NonZeroU32::new(app.settings.api_requests_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = rps.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
    let campaign_runner = outbound.as_ref().map(|o| {
        Arc::new(crate::campaigns::runner::Runner::new(
            app.campaigns.clone(),
            o.clone(),
            &app.settings,
        ))
    });
    Arc::new(Shared {
        campaign_runner,
        api_limiter: RateLimiter::keyed(Quota::per_second(rps).allow_burst(burst)),
        public_limiter: RateLimiter::keyed(Quota::per_minute(
            NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN),
        )),
        app,
        outbound,
    })
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Mailstead API", description = "Contacts, lists, CRM (leads, accounts, opportunities, activities, pipeline), imports, users and API tokens. Authenticate with `Authorization: Bearer <token>` or the console session cookie (plus `X-CSRF-Token` on writes). Errors: `{\"error\": {\"code\", \"message\", \"field\"?}}`."),
    paths(
        contacts::search, contacts::create, contacts::get, contacts::update, contacts::delete,
        contacts::lists, contacts::create_list, contacts::get_list, contacts::update_list, contacts::delete_list,
        imports::create, imports::get, imports::list,
        accounts::login, accounts::current, accounts::logout,
        accounts::users, accounts::directory, accounts::create_user, accounts::update_user, accounts::delete_user,
        accounts::tokens, accounts::create_token, accounts::revoke_token,
        messages::send, messages::get, messages::log, messages::queue,
        suppressions::list, suppressions::add, suppressions::get, suppressions::remove,
        suppressions::export, suppressions::contact_feedback, suppressions::log,
        webhooks_in::ses, webhooks_in::sendgrid, webhooks_in::mailgun, webhooks_in::postmark, webhooks_in::generic,
        webhooks_out::list, webhooks_out::create, webhooks_out::get, webhooks_out::update, webhooks_out::delete,
        webhooks_out::enable, webhooks_out::rotate_secret, webhooks_out::test, webhooks_out::deliveries,
        audit::list, audit::export, audit::verify,
        gdpr::export, gdpr::erase, gdpr::export_lead, gdpr::erase_lead, gdpr::consents, gdpr::record_consent,
        campaigns::templates, campaigns::library, campaigns::create_template, campaigns::template,
        campaigns::update_template, campaigns::delete_template, campaigns::preview_template,
        campaigns::list, campaigns::create, campaigns::get, campaigns::update, campaigns::delete,
        campaigns::report, campaigns::start, campaigns::schedule, campaigns::pause,
        campaigns::resume, campaigns::cancel, campaigns::test, campaigns::audience_count, forms::embed,
        segments::list, segments::create, segments::get, segments::update, segments::delete,
        segments::count, segments::preview,
        crm::leads::list, crm::leads::count, crm::leads::export, crm::leads::create, crm::leads::get, crm::leads::update, crm::leads::delete, crm::convert,
        crm::accounts::list, crm::accounts::count, crm::accounts::export, crm::accounts::create, crm::accounts::get, crm::accounts::update, crm::accounts::delete,
        crm::opportunities::list, crm::opportunities::count, crm::opportunities::export, crm::opportunities::create, crm::opportunities::get, crm::opportunities::update, crm::opportunities::delete,
        crm::activities::list, crm::activities::count, crm::activities::export, crm::activities::create, crm::activities::get, crm::activities::update, crm::activities::delete,
        crm::import_leads, crm::import_accounts, crm::import_opportunities,
        crm::timeline, crm::pipeline, crm::stages, crm::set_stages, crm::lead_score, crm::scoring_rules, crm::set_scoring_rules,
        crm::enrolments, crm::add_enrolment, crm::certifications, crm::add_certification, crm::delete_training, crm::expiring,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;
impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

pub fn router(state: AppState) -> Router {
    use axum::routing::get as g;
    let max_body = state.settings.max_body_bytes;
    let max_import = usize::try_from(state.settings.max_import_bytes).unwrap_or(usize::MAX);
    let api = Router::new()
        .route("/contacts", g(contacts::search).post(contacts::create))
        .route(
            "/contacts/{id}",
            g(contacts::get)
                .patch(contacts::update)
                .delete(contacts::delete),
        )
        .route("/lists", g(contacts::lists).post(contacts::create_list))
        .route(
            "/lists/{id}",
            g(contacts::get_list)
                .patch(contacts::update_list)
                .delete(contacts::delete_list),
        )
        .route(
            "/imports",
            g(imports::list)
                .post(imports::create)
                .layer(DefaultBodyLimit::max(max_import)),
        )
        .route("/imports/{id}", g(imports::get))
        .route(
            "/session",
            g(accounts::current)
                .post(accounts::login)
                .delete(accounts::logout),
        )
        .route("/users", g(accounts::users).post(accounts::create_user))
        .route("/users/directory", g(accounts::directory))
        .route(
            "/users/{id}",
            axum::routing::patch(accounts::update_user).delete(accounts::delete_user),
        )
        .route("/tokens", g(accounts::tokens).post(accounts::create_token))
        .route(
            "/tokens/{id}",
            axum::routing::delete(accounts::revoke_token),
        )
        .route("/tx", axum::routing::post(messages::send))
        .route("/messages/{id}", g(messages::get))
        .route("/deliveries", g(messages::log))
        .route("/queue", g(messages::queue))
        .route(
            "/suppressions",
            g(suppressions::list).post(suppressions::add),
        )
        .route("/suppressions/export", g(suppressions::export))
        .route(
            "/suppressions/{email}",
            g(suppressions::get).delete(suppressions::remove),
        )
        .route("/contacts/{id}/feedback", g(suppressions::contact_feedback))
        .route("/contacts/{id}/export", g(gdpr::export))
        .route("/contacts/{id}/erase", axum::routing::post(gdpr::erase))
        .route("/leads/{id}/export", g(gdpr::export_lead))
        .route("/leads/{id}/erase", axum::routing::post(gdpr::erase_lead))
        .route(
            "/contacts/{id}/consents",
            g(gdpr::consents).post(gdpr::record_consent),
        )
        .route("/feedback", g(suppressions::log))
        .nest("/webhooks", webhooks_in::routes(&state))
        .nest("/webhook-subscriptions", webhooks_out::routes())
        .merge(campaigns::routes())
        .route("/lists/{id}/form", g(forms::embed))
        .route("/segments", g(segments::list).post(segments::create))
        .route("/segments/preview", axum::routing::post(segments::preview))
        .route(
            "/segments/{id}",
            g(segments::get)
                .put(segments::update)
                .delete(segments::delete),
        )
        .route("/segments/{id}/count", g(segments::count))
        .route("/audit", g(audit::list))
        .route("/audit/export", g(audit::export))
        .route("/audit/verify", g(audit::verify))
        .merge(crm::routes(max_import))
        .route("/openapi.json", g(openapi))
        .fallback(api_not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(no_store));
    Router::new()
        .nest("/api/v1", api)
        .route(
            "/u/{token}",
            get(public::unsubscribe_page)
                .post(public::unsubscribe)
                .layer(DefaultBodyLimit::max(public::MAX_FORM_BYTES)),
        )
        .route(
            "/p/{token}",
            get(public::preferences)
                .post(public::save_preferences)
                .layer(DefaultBodyLimit::max(public::MAX_FORM_BYTES)),
        )
        .route(
            "/f/{list}",
            get(forms::form_page)
                .post(forms::sign_up)
                .layer(DefaultBodyLimit::max(public::MAX_FORM_BYTES)),
        )
        .route(
            "/confirm/{token}",
            get(forms::confirm_page).post(forms::confirm),
        )
        .route("/o/{token}", get(tracking::open))
        .route(
            "/c/{token}/{mac}",
            get(tracking::click).head(tracking::click),
        )
        .route("/v/{token}", get(tracking::view))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(console)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

async fn api_not_found(uri: axum::extract::OriginalUri) -> ApiError {
    let path = uri.0.path();
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no API route {path}"),
    )
}

async fn healthz(State(app): State<AppState>) -> Response {
    let ok = {
        let a = app.clone();
        tokio::task::spawn_blocking(move || a.healthy())
            .await
            .unwrap_or(false)
    };
    if ok {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok"})),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "unavailable"})),
        )
            .into_response()
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    let a = app.clone();
    let counts = tokio::task::spawn_blocking(move || {
        (a.store.contact_count().unwrap_or(0), a.search.num_docs())
    })
    .await
    .unwrap_or((0, 0));
    app.metrics.contacts.set(counts.0);
    app.metrics.search_docs.set(counts.1);
    app.metrics
        .uptime_seconds
        .set(app.started.elapsed().as_secs());
    let a = app.clone();
    if let Ok(Ok(q)) = tokio::task::spawn_blocking(move || a.store.queue_stats()).await {
        for (site, s) in &q.by_site {
            app.metrics
                .queue_waiting
                .get_or_create(&crate::metrics::SiteLabels { site: site.clone() })
                .set(s.waiting);
        }
        let age = q
            .oldest_waiting
            .map(|t| (crate::model::now() - t).whole_seconds().max(0) as u64)
            .unwrap_or(0);
        app.metrics.queue_oldest_age_seconds.set(age);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

async fn observe(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let r = next.run(req).await;
    app.metrics
        .http_requests
        .get_or_create(&crate::metrics::HttpLabels {
            method,
            status: r.status().as_u16(),
        })
        .inc();
    r
}

async fn no_store(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
        );
    }
    r
}

#[derive(rust_embed::RustEmbed)]
#[folder = "$OUT_DIR/console"]
struct Console;

/// Serves the embedded console; unknown paths get index.html (client-side routes).
async fn console(uri: Uri) -> Response {
    if uri.path() == "/api" || uri.path().starts_with("/api/") {
        return api_not_found(axum::extract::OriginalUri(uri))
            .await
            .into_response();
    }
    let path = uri.path().trim_start_matches('/');
    let (file, name) = match Console::get(path).filter(|_| !path.is_empty()) {
        Some(f) => (f, path.to_string()),
        None => match Console::get("index.html") {
            Some(f) => (f, "index.html".to_string()),
            None => return (StatusCode::NOT_FOUND, "console not built").into_response(),
        },
    };
    let mime = mime_guess::from_path(&name).first_or_octet_stream();
    let cache = if name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_str(mime.as_ref())
                    .unwrap_or(HeaderValue::from_static("application/octet-stream")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        file.data.into_owned(),
    )
        .into_response()
}

/// Serves HTTPS until `shutdown` resolves.
pub async fn serve(
    state: AppState,
    tls: axum_server::tls_rustls::RustlsConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = state.settings.listen;
    let handle = axum_server::Handle::new();
    let h2 = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h2.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    let app = router(state);
    axum_server::bind_rustls(addr, tls)
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await
}
