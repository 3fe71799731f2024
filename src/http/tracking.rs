//! Tracking URLs in campaign mail, no login: `GET /o/{token}.gif` (open pixel; always the
//! image, whatever the token), `GET|HEAD /c/{token}/{mac}?u=URL` (click: a 302 only to the
//! URL signed for that recipient, otherwise a 404 page) and `GET /v/{token}` (web copy).

use super::AppState;
use crate::tracking::{Client, TrackError};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// The smallest transparent GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

fn client(headers: &HeaderMap, peer: &SocketAddr, method: &Method) -> Client {
    Client {
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
        ip: Some(peer.ip()),
        head: method == Method::HEAD,
    }
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, private"),
    );
    r
}

pub async fn open(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let c = client(&headers, &peer, &method);
    let t = app.tracking.clone();
    match tokio::task::spawn_blocking(move || t.open(&token, &c)).await {
        Ok(Ok(())) | Ok(Err(TrackError::BadLink | TrackError::Gone)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "recording an open failed"),
        Err(e) => tracing::warn!(error = %e, "recording an open failed"),
    }
    no_store(([(header::CONTENT_TYPE, "image/gif")], PIXEL).into_response())
}

#[derive(serde::Deserialize)]
pub struct ClickQuery {
    u: Option<String>,
}

fn not_found() -> Response {
    no_store(
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Link not recognised</title></head>\
             <body><h1>Link not recognised</h1><p>This link is not valid. It may have been copied \
             incompletely: try opening it from the email again.</p></body></html>",
        )
            .into_response(),
    )
}

pub async fn click(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path((token, mac)): Path<(String, String)>,
    Query(q): Query<ClickQuery>,
) -> Response {
    let Some(url) = q.u.filter(|u| u.len() <= 4096) else {
        return not_found();
    };
    let c = client(&headers, &peer, &method);
    let t = app.tracking.clone();
    let res = tokio::task::spawn_blocking(move || t.click(&token, &mac, &url, &c)).await;
    match res {
        Ok(Ok(target)) => match HeaderValue::from_str(&target) {
            Ok(loc) => no_store((StatusCode::FOUND, [(header::LOCATION, loc)]).into_response()),
            Err(_) => not_found(),
        },
        Ok(Err(TrackError::BadLink | TrackError::Gone)) => not_found(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "recording a click failed");
            not_found()
        }
        Err(_) => not_found(),
    }
}

pub async fn view(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    let t = app.tracking.clone();
    match tokio::task::spawn_blocking(move || t.view(&token)).await {
        Ok(Ok(html)) => {
            let mut r = no_store(
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
            );
            // the message's own styles are inline and in <style>; nothing runs
            r.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; font-src https:; frame-ancestors 'none'",
                ),
            );
            r
        }
        Ok(Err(TrackError::Gone)) => no_store(
            (
                StatusCode::GONE,
                "This message is no longer available on the web.",
            )
                .into_response(),
        ),
        _ => not_found(),
    }
}
