//! Public sign-up forms, no login: `GET /f/{list}` (a hosted form), `POST /f/{list}` (from
//! it or from the embeddable HTML of `GET /api/v1/lists/{id}/form`), and double opt-in
//! confirmation at `GET|POST /confirm/{token}` (a GET only shows the button: link scanners
//! must not confirm for people). Per-address rate limits apply to all of them.

use super::AppState;
use super::auth::Authed;
use super::error::{ApiError, Json, Path as ApiPath, blocking};
use super::public::{limited, page};
use crate::forms::{FormError, Outcome, SignUp, wording};
use crate::model::Id;
use crate::outbound::TxRequest;
use crate::templates::attr_escape as esc;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::net::SocketAddr;

fn problem(e: &FormError) -> Response {
    match e {
        FormError::Invalid(m) => page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Please check your details",
            &format!(
                "<p>{}</p><p><a href=\"javascript:history.back()\">Back</a></p>",
                esc(m)
            ),
        ),
        FormError::NoList => page(
            StatusCode::NOT_FOUND,
            "Form not found",
            "<p>This sign-up form does not exist (any more).</p>",
        ),
        FormError::BadLink => page(
            StatusCode::NOT_FOUND,
            "Link not recognised",
            "<p>This confirmation link is not valid. It may have been copied incompletely: \
             try opening it from the email again.</p>",
        ),
        other => {
            tracing::error!(error = %other, "sign-up failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "<p>We could not save your sign-up just now. Please try again in a minute.</p>",
            )
        }
    }
}

pub async fn form_page(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(list_id): Path<Id>,
) -> Response {
    if let Some(r) = limited(&app, &peer) {
        return r;
    }
    let a = app.clone();
    match tokio::task::spawn_blocking(move || a.forms.list(list_id)).await {
        Ok(Ok(list)) => page(
            StatusCode::OK,
            &format!("Subscribe: {}", list.name),
            &app.forms.embed_html(&list),
        ),
        Ok(Err(e)) => problem(&e),
        Err(_) => problem(&FormError::Invalid("please try again".into())),
    }
}

pub async fn sign_up(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(list_id): Path<Id>,
    body: Bytes,
) -> Response {
    if let Some(r) = limited(&app, &peer) {
        return r;
    }
    let mut s = SignUp {
        ip: Some(peer.ip().to_string()),
        ..SignUp::default()
    };
    for (k, v) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "email" => s.email = v.into_owned(),
            "first_name" => s.first_name = v.into_owned(),
            "last_name" => s.last_name = v.into_owned(),
            "website" => s.trap = v.into_owned(),
            _ => {}
        }
    }
    let a = app.clone();
    let res = tokio::task::spawn_blocking(move || {
        let list = a.forms.list(list_id)?;
        a.forms
            .sign_up(list_id, &s, &wording(&list, a.forms.company()))
    })
    .await;
    match res {
        Ok(Ok(Outcome::Confirm {
            email,
            list,
            confirm_url,
            ..
        })) => {
            if let Err(e) = send_confirmation(&app, &email, &list.name, &confirm_url).await {
                tracing::error!(error = %e, "the sign-up confirmation could not be queued");
                return problem(&FormError::Invalid(
                    "we could not send the confirmation email; please try again later".into(),
                ));
            }
            page(
                StatusCode::OK,
                "Check your inbox",
                &format!(
                    "<p>We sent a confirmation link to <strong>{}</strong>. Follow it to \
                     start getting \"{}\".</p>",
                    esc(&email),
                    esc(&list.name)
                ),
            )
        }
        // a bot that filled the honeypot sees the same thanks as a person
        Ok(Ok(Outcome::Subscribed { .. } | Outcome::Ignored)) => page(
            StatusCode::OK,
            "Thank you",
            "<p>You are subscribed. You can unsubscribe at any time with the link in every email.</p>",
        ),
        Ok(Err(e)) => problem(&e),
        Err(_) => problem(&FormError::Invalid("please try again".into())),
    }
}

async fn send_confirmation(
    app: &AppState,
    email: &str,
    list: &str,
    url: &str,
) -> Result<(), String> {
    let Some(outbound) = app.outbound.clone() else {
        return Err("no sender in this process".into());
    };
    let req = TxRequest {
        from: app.settings.sender_address.clone(),
        to: vec![email.to_string()],
        subject: format!("Please confirm your subscription to {list}"),
        html: Some(format!(
            "<p>Hello,</p><p>please confirm that you want to get \"{}\" emails:</p>\
             <p><a href=\"{}\">Yes, subscribe me</a></p>\
             <p>If you did not sign up, ignore this email and nothing happens.</p>",
            esc(list),
            esc(url)
        )),
        text: Some(format!(
            "Hello,\n\nplease confirm that you want to get \"{list}\" emails:\n{url}\n\n\
             If you did not sign up, ignore this email and nothing happens.\n"
        )),
        ..TxRequest::default()
    };
    tokio::task::spawn_blocking(move || {
        outbound
            .submit_tx(&crate::policy::Actor::system(), &req)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

pub async fn confirm_page(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    if let Some(r) = limited(&app, &peer) {
        return r;
    }
    page(
        StatusCode::OK,
        "Confirm your subscription",
        &format!(
            "<form method=\"post\" action=\"/confirm/{}\"><p><button type=\"submit\">Yes, \
             subscribe me</button></p></form>",
            esc(&token)
        ),
    )
}

pub async fn confirm(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Response {
    if let Some(r) = limited(&app, &peer) {
        return r;
    }
    let a = app.clone();
    let ip = Some(peer.ip().to_string());
    match tokio::task::spawn_blocking(move || a.forms.confirm(&token, ip)).await {
        Ok(Ok(list)) => page(
            StatusCode::OK,
            "You are subscribed",
            &format!(
                "<p>Thank you: you will get \"{}\". Every email has a link to unsubscribe.</p>",
                esc(&list.name)
            ),
        ),
        Ok(Err(e)) => problem(&e),
        Err(_) => problem(&FormError::Invalid("please try again".into())),
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EmbedForm {
    /// The hosted form.
    pub url: String,
    /// HTML to paste into a web page (with the honeypot field and the consent wording).
    pub html: String,
}

#[utoipa::path(get, path = "/api/v1/lists/{id}/form", tag = "lists",
    responses((status = 200, body = EmbedForm), (status = 404, body = super::error::ErrorBody)))]
pub async fn embed(
    State(app): State<AppState>,
    Authed(actor): Authed,
    ApiPath(id): ApiPath<Id>,
) -> Result<Json<EmbedForm>, ApiError> {
    actor.check_lists(crate::policy::Action::Read)?;
    let a = app.clone();
    let list = blocking(move || {
        a.forms.list(id).map_err(|e| match e {
            FormError::NoList => ApiError::not_found("list"),
            other => ApiError::internal(other),
        })
    })
    .await?;
    Ok(Json(EmbedForm {
        url: format!("{}/f/{}", app.settings.public_url, list.id),
        html: app.forms.embed_html(&list),
    }))
}
