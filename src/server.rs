//! `mailstead serve`: opens the appliance, prepares TLS and the first admin, starts the
//! HTTPS listener, the control socket and housekeeping, and shuts down cleanly on a signal.

use crate::app::App;
use crate::config::Settings;
use crate::model::Role;
use anyhow::{Context, Result};
use std::sync::Arc;

pub fn run(settings: Settings) -> Result<()> {
    crate::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(settings))
}

async fn serve(settings: Settings) -> Result<()> {
    let started = std::time::Instant::now();
    let s2 = settings.clone();
    let app = tokio::task::spawn_blocking(move || App::open(s2)).await??;
    let interrupted = app.store.fail_interrupted_imports()?;
    if interrupted > 0 {
        tracing::warn!(
            imports = interrupted,
            "imports interrupted by the last stop were marked failed"
        );
    }
    first_admin(&app)?;
    if let Some(e) = app.audit.record_settings(&app.settings)? {
        tracing::info!(
            entry = e.seq,
            "settings changed since the last start (recorded in the audit trail)"
        );
    }
    let requeued = app.store.requeue_in_flight()?;
    if requeued > 0 {
        tracing::warn!(
            recipients = requeued,
            "deliveries in flight at the last stop were queued again"
        );
    }
    let outbound = Arc::new(
        crate::outbound::Outbound::new(&app.settings, app.store.clone(), app.metrics.clone())
            .context("starting the delivery engine")?,
    );
    let host = url_host(&settings.public_url);
    let files = crate::tls::ensure(
        &settings.data_dir,
        settings.tls_cert.as_deref(),
        settings.tls_key.as_deref(),
        &host.into_iter().collect::<Vec<_>>(),
    )?;
    if files.generated {
        tracing::info!(cert = %files.cert.display(), "generated a self-signed TLS certificate; set tls_cert/tls_key for a real one");
    }
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
        .await
        .with_context(|| {
            format!(
                "loading TLS certificate {} and key {}",
                files.cert.display(),
                files.key.display()
            )
        })?;
    let state = crate::http::state(app, Some(outbound.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sender = tokio::spawn(outbound.clone().run(stop_rx.clone()));
    let bounce_listener = match settings.feedback.listen {
        Some(addr) => {
            let socket = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the bounce listener on {addr}"))?;
            tracing::info!(listen = %addr, "bounce listener ready");
            let l = crate::inbound::Listener::new(
                crate::inbound::ListenerConfig {
                    hostname: settings.delivery.hostname.clone(),
                    addresses: settings.feedback.addresses.clone(),
                    max_bytes: settings.feedback.max_bytes,
                    messages_per_minute: settings.feedback.messages_per_minute,
                },
                state.feedback.clone(),
                state.subscriptions.clone(),
                state.metrics.clone(),
            );
            Some(tokio::spawn(l.serve(socket, stop_rx.clone())))
        }
        None => None,
    };
    let mailbox_poller = match &settings.feedback.mailbox {
        Some(url) => {
            let url = crate::mailbox::MailboxUrl::parse(url.expose())?;
            tracing::info!(host = %url.host, port = url.port, "polling the bounce mailbox");
            Some(tokio::spawn(crate::mailbox::run(
                url,
                settings.delivery.allow_private_targets,
                settings.feedback.max_bytes,
                std::time::Duration::from_secs(settings.feedback.mailbox_interval_secs),
                state.feedback.clone(),
                state.metrics.clone(),
                stop_rx.clone(),
            )))
        }
        None => None,
    };
    let hooks = tokio::spawn(state.webhooks.clone().run(stop_rx.clone()));
    let campaign_sender = state
        .campaign_runner
        .clone()
        .map(|r| tokio::spawn(r.run(stop_rx.clone())));

    let control = tokio::spawn(crate::control::serve(
        state.clone(),
        settings.data_dir.clone(),
    ));
    // the segment row cache is built once per start (seconds for a million contacts): build
    // it now, in the background, rather than at the first count someone waits for
    {
        let st = state.clone();
        tokio::task::spawn_blocking(move || match st.segments.warm() {
            Ok(s) => tracing::debug!(contacts = s.contacts, "segment cache warm"),
            Err(e) => tracing::warn!(error = %e, "segment cache not built at start"),
        });
    }
    let housekeeping = {
        let st = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let s = st.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(e) = s.store.purge_sessions(crate::model::now()) {
                        tracing::warn!(error = %e, "session purge failed");
                    }
                    let keep = s
                        .feedback
                        .rules()
                        .soft_bounce_window
                        .max(time::Duration::days(30));
                    if let Err(e) = s.store.prune_feedback_keys(crate::model::now() - keep) {
                        tracing::warn!(error = %e, "feedback key pruning failed");
                    }
                    if let Err(e) = s.webhooks.prune() {
                        tracing::warn!(error = %e, "webhook outbox prune failed");
                    }
                    if let Err(e) = s.gdpr.finish_pending_purge() {
                        tracing::warn!(error = %e, "purge after erasure failed");
                    }
                    // lead scores cool down as engagement ages, and follow new engagement
                    match s.crm.rescore_all() {
                        Ok(n) if n > 0 => tracing::info!(leads = n, "lead scores refreshed"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "lead rescoring failed"),
                    }
                })
                .await;
            }
        })
    };
    // retention rules, run by the appliance itself once a day (the first run at start)
    let retention = {
        let st = state.clone();
        let mut rules = crate::gdpr::Retention::from_settings(&settings.retention);
        if settings.retention.unconverted_leads_days > 0 {
            rules.add(Box::new(crate::crm::personal::UnconvertedLeads {
                days: settings.retention.unconverted_leads_days,
                store: state.store.clone(),
            }));
        }
        let rules = Arc::new(rules);
        tokio::spawn(async move {
            if rules.is_empty() {
                return;
            }
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(24 * 3600));
            loop {
                tick.tick().await;
                let (s, r) = (st.clone(), rules.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    r.run(&s.gdpr, crate::model::now());
                })
                .await;
            }
        })
    };
    tracing::info!(
        listen = %settings.listen,
        public_url = %settings.public_url,
        data_dir = %settings.data_dir.display(),
        contacts = state.search.num_docs(),
        startup_ms = started.elapsed().as_millis() as u64,
        "mailstead is ready"
    );
    let result = crate::http::serve(state.clone(), tls, async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    })
    .await;
    if tokio::time::timeout(std::time::Duration::from_secs(30), sender)
        .await
        .is_err()
    {
        tracing::warn!("deliveries still in flight at shutdown are requeued at the next start");
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(15), hooks).await;
    if let Some(c) = campaign_sender {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(15), c).await;
    }
    control.abort();
    housekeeping.abort();
    retention.abort();
    for task in [bounce_listener, mailbox_poller].into_iter().flatten() {
        task.abort();
    }
    let _ = std::fs::remove_file(crate::control::socket_path(&settings.data_dir));
    let st = state.clone();
    tokio::task::spawn_blocking(move || st.search.commit()).await??;
    tracing::info!("stopped");
    result.with_context(|| format!("serving HTTPS on {}", settings.listen))
}

fn first_admin(app: &App) -> Result<()> {
    if app.store.user_count()? > 0 {
        return Ok(());
    }
    match &app.settings.admin_email {
        Some(email) => {
            let system = crate::policy::Actor {
                email: "system".into(),
                ..crate::policy::Actor::system()
            };
            let u = app.accounts.create_user_by(
                &system,
                email,
                Role::Admin,
                app.settings.admin_password.expose(),
                None,
            )?;
            tracing::info!(email = %u.email, "created the first admin from MAILSTEAD_ADMIN_EMAIL");
        }
        None => {
            tracing::warn!(
                "no users yet. Create the first admin (also while the server runs) with:\n    mailstead user create --data-dir {} --email you@example.com --role admin\nwhich reads the password from standard input; or set MAILSTEAD_ADMIN_EMAIL and MAILSTEAD_ADMIN_PASSWORD_FILE",
                app.settings.data_dir.display()
            );
        }
    }
    Ok(())
}

fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let host = rest.split(['/', '?']).next()?;
    let host = if host.starts_with('[') {
        host.split(']').next()?.trim_start_matches('[')
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_string())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
