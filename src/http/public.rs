//! Pages for recipients, reached from links in mail: no login, no cookie, no redirect. The
//! signed token in the path is the only credential.
//!
//! - `POST /u/{token}` with `List-Unsubscribe=One-Click` (RFC 8058): unsubscribes at once, 200.
//! - `GET /u/{token}`: a page asking to confirm (link scanners fetch GETs, so a GET never
//!   unsubscribes); its form POSTs back.
//! - `GET|POST /p/{token}`: the preference centre (lists kept, resubscribing).

use super::AppState;
use crate::links::LinkKind;
use crate::subscriptions::{Preferences, SubscriptionError, Via};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// Largest form body accepted on these pages.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

use crate::templates::attr_escape as esc;

/// `ann@example.com` → `an…@example.com`: enough to recognise, little to leak when a
/// message is forwarded.
fn masked(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let keep: String = local.chars().take(2).collect();
            format!("{keep}…@{domain}")
        }
        None => "…".into(),
    }
}

pub(super) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>{t}</title><style>\
body{{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f6fa;color:#1c2433}}\
main{{max-width:34rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:10px;\
box-shadow:0 1px 3px rgba(0,0,0,.12)}}h1{{font-size:1.4rem;margin-top:0}}\
button{{font:inherit;padding:.6rem 1.2rem;border:0;border-radius:6px;background:#1f4fa8;color:#fff;cursor:pointer}}\
button.secondary{{background:#eef1f6;color:#1c2433}}label{{display:block;margin:.4rem 0}}\
.muted{{color:#4f5b6e}}@media (prefers-color-scheme: dark){{body{{background:#121722;color:#e7ebf2}}\
main{{background:#1c2433}}.muted{{color:#b5bfcf}}button.secondary{{background:#2b3547;color:#e7ebf2}}}}\
</style></head><body><main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    );
    let mut r = (status, html).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn problem(e: &SubscriptionError) -> Response {
    match e {
        SubscriptionError::BadLink => page(
            StatusCode::NOT_FOUND,
            "Link not recognised",
            "<p>This link is not valid. It may have been copied incompletely: try opening it \
             from the email again.</p>",
        ),
        SubscriptionError::Expired => page(
            StatusCode::GONE,
            "Link expired",
            "<p>This link belongs to a message we no longer keep. Reply to any of our emails \
             and we will take care of your request.</p>",
        ),
        other => {
            tracing::error!(error = %other, "recipient page failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "<p>We could not save your choice just now. Please try again in a minute.</p>",
            )
        }
    }
}

pub(super) fn limited(app: &AppState, peer: &SocketAddr) -> Option<Response> {
    app.public_limiter.check_key(&peer.ip()).err().map(|_| {
        page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            "<p>Please wait a minute and try again.</p>",
        )
    })
}

pub async fn unsubscribe_page(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    if let Some(r) = limited(&app, &peer) {
        return r;
    }
    let a = app.clone();
    let t = token.clone();
    let res =
        tokio::task::spawn_blocking(move || a.subscriptions.resolve(LinkKind::Unsubscribe, &t))
            .await;
    let r = match res {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return problem(&e),
        Err(_) => return problem(&SubscriptionError::Invalid("task failed".into())),
    };
    let prefs = app
        .subscriptions
        .links()
        .preferences_url(r.message, r.index);
    page(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>Stop emails to <strong>{}</strong>?</p>\
             <form method=\"post\"><input type=\"hidden\" name=\"confirm\" value=\"1\">\
             <button type=\"submit\">Unsubscribe</button></form>\
             <p class=\"muted\">Or <a href=\"{}\">choose which emails you get</a>.</p>",
            esc(&masked(&r.email)),
            esc(&prefs)
        ),
    )
}

pub async fn unsubscribe(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = limited(&app, &peer) {
        return r;
    }
    let one_click = String::from_utf8_lossy(&body).contains("List-Unsubscribe=One-Click");
    let Some((message, index)) = app
        .subscriptions
        .links()
        .decode(LinkKind::Unsubscribe, &token)
    else {
        return problem(&SubscriptionError::BadLink);
    };
    let a = app.clone();
    let via = if one_click { Via::OneClick } else { Via::Page };
    let ip = Some(peer.ip().to_string());
    let res =
        tokio::task::spawn_blocking(move || a.subscriptions.unsubscribe(message, index, via, ip))
            .await;
    match res {
        Ok(Ok(r)) => {
            if one_click {
                let mut resp = (StatusCode::OK, "unsubscribed\n").into_response();
                resp.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                return resp;
            }
            let prefs = app
                .subscriptions
                .links()
                .preferences_url(r.message, r.index);
            page(
                StatusCode::OK,
                "You are unsubscribed",
                &format!(
                    "<p><strong>{}</strong> will get no more of these emails.</p>\
                     <p class=\"muted\">Changed your mind? <a href=\"{}\">Manage your \
                     preferences</a>.</p>",
                    esc(&masked(&r.email)),
                    esc(&prefs)
                ),
            )
        }
        Ok(Err(e)) => problem(&e),
        Err(_) => problem(&SubscriptionError::Invalid("task failed".into())),
    }
}

fn preferences_page(p: &Preferences, token: &str, saved: bool) -> Response {
    let mut rows = String::new();
    for (list, status) in &p.lists {
        let checked = if *status == crate::model::MembershipStatus::Unsubscribed {
            ""
        } else {
            " checked"
        };
        rows.push_str(&format!(
            "<label><input type=\"checkbox\" name=\"list\" value=\"{}\"{checked}> {}{}</label>",
            list.id,
            esc(&list.name),
            if list.description.is_empty() {
                String::new()
            } else {
                format!(" <span class=\"muted\">— {}</span>", esc(&list.description))
            }
        ));
    }
    if rows.is_empty() {
        rows.push_str("<p class=\"muted\">You are not on any of our lists.</p>");
    }
    let status = if saved {
        "<p role=\"status\"><strong>Your choices are saved.</strong></p>"
    } else {
        ""
    };
    let all = if p.unsubscribed_from_all {
        "<p class=\"muted\">You unsubscribed from all our emails. Ticking a list subscribes you to it again.</p>"
    } else {
        ""
    };
    page(
        StatusCode::OK,
        "Your email preferences",
        &format!(
            "{status}<p>Emails to <strong>{}</strong>:</p>{all}\
             <form method=\"post\" action=\"/p/{}\">{rows}\
             <p><button type=\"submit\">Save</button></p></form>",
            esc(&masked(&p.recipient.email)),
            esc(token)
        ),
    )
}

pub async fn preferences(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    if let Some(r) = limited(&app, &peer) {
        return r;
    }
    let a = app.clone();
    let t = token.clone();
    match tokio::task::spawn_blocking(move || a.subscriptions.preferences(&t)).await {
        Ok(Ok(p)) => preferences_page(&p, &token, false),
        Ok(Err(e)) => problem(&e),
        Err(_) => problem(&SubscriptionError::Invalid("task failed".into())),
    }
}

pub async fn save_preferences(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = limited(&app, &peer) {
        return r;
    }
    // `list=1&list=7`: ids are digits, so no decoding is needed; anything else is ignored
    let keep: Vec<crate::model::Id> = String::from_utf8_lossy(&body)
        .split('&')
        .filter_map(|kv| kv.strip_prefix("list="))
        .filter_map(|v| v.parse().ok())
        .take(1000)
        .collect();
    let a = app.clone();
    let t = token.clone();
    let ip = Some(peer.ip().to_string());
    match tokio::task::spawn_blocking(move || a.subscriptions.set_preferences(&t, &keep, ip)).await
    {
        Ok(Ok(p)) => preferences_page(&p, &token, true),
        Ok(Err(e)) => problem(&e),
        Err(_) => problem(&SubscriptionError::Invalid("task failed".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_masking() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(masked("ann@example.com"), "an…@example.com");
        assert_eq!(masked("a@x.io"), "a…@x.io");
    }
}
