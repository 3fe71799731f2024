//! `/api/v1/session`, `/api/v1/users` and `/api/v1/tokens`.

use super::AppState;
use super::auth::{Authed, SESSION_COOKIE, session_cookie};
use super::error::{ApiError, Json, Path, blocking};
use crate::model::{ApiToken, Id, Role, User};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: Id,
    pub email: String,
    pub role: Role,
    /// A manager with a team sees only the team's CRM records (and unassigned ones).
    pub team: Option<String>,
    pub created_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            id: u.id,
            email: u.email,
            role: u.role,
            team: u.team,
            created_at: u
                .created_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub user: SessionUser,
    pub csrf_token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionUser {
    pub id: Id,
    pub email: String,
    pub role: Role,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

fn cookie(value: &str, max_age: i64) -> HeaderValue {
    let v = format!(
        "{SESSION_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

#[utoipa::path(post, path = "/api/v1/session", request_body = LoginBody, tag = "session",
    responses((status = 200, body = SessionView), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody)))]
pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<LoginBody>,
) -> Result<Response, ApiError> {
    let a2 = app.clone();
    let ip = peer.ip().to_string();
    let result = blocking(move || a2.accounts.login(&body.email, &body.password, &ip)).await;
    let outcome = match &result {
        Ok(_) => "success",
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => "throttled",
        Err(_) => "failure",
    };
    app.metrics
        .logins
        .get_or_create(&crate::metrics::OutcomeLabels {
            outcome: outcome.into(),
        })
        .inc();
    let (user, secret, session) = result.inspect_err(|_| {
        tracing::info!(ip = %peer.ip(), outcome, "login refused");
    })?;
    tracing::info!(user = user.id, ip = %peer.ip(), "login");
    let max_age = (session.expires_at - session.created_at).whole_seconds();
    let mut r = Json(SessionView {
        user: SessionUser {
            id: user.id,
            email: user.email,
            role: user.role,
        },
        csrf_token: session.csrf_token,
    })
    .into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, cookie(&secret, max_age));
    Ok(r)
}

#[utoipa::path(get, path = "/api/v1/session", tag = "session", responses((status = 200, body = SessionView), (status = 401, body = super::error::ErrorBody)))]
pub async fn current(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Json<SessionView>, ApiError> {
    let secret =
        session_cookie(&headers).ok_or_else(|| ApiError::unauthenticated("not logged in"))?;
    let (actor, session) = blocking(move || app.accounts.session(&secret)).await?;
    Ok(Json(SessionView {
        user: SessionUser {
            id: actor.user_id,
            email: actor.email,
            role: actor.role,
        },
        csrf_token: session.csrf_token,
    }))
}

#[utoipa::path(delete, path = "/api/v1/session", tag = "session", responses((status = 204)))]
pub async fn logout(
    State(app): State<AppState>,
    Authed(actor): Authed,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(secret) = session_cookie(&headers) {
        blocking(move || app.accounts.logout(&actor, &secret)).await?;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie("", 0));
    Ok(r)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserPage {
    pub items: Vec<UserView>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    pub role: Role,
    pub password: String,
    /// Optional team name.
    pub team: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub password: Option<String>,
    /// A team name; `""` takes the user out of their team.
    pub team: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = UserPage), (status = 403, body = super::error::ErrorBody)))]
pub async fn users(
    State(app): State<AppState>,
    Authed(actor): Authed,
) -> Result<Json<UserPage>, ApiError> {
    let users = blocking(move || app.accounts.users(&actor)).await?;
    Ok(Json(UserPage {
        items: users.into_iter().map(UserView::from).collect(),
    }))
}

/// One member of the team directory.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DirectoryEntry {
    pub id: Id,
    pub email: String,
    pub role: Role,
    pub team: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Directory {
    pub items: Vec<DirectoryEntry>,
}

/// The users records can be assigned to (any signed-in user may read it).
#[utoipa::path(get, path = "/api/v1/users/directory", tag = "users", responses((status = 200, body = Directory), (status = 401, body = super::error::ErrorBody)))]
pub async fn directory(
    State(app): State<AppState>,
    Authed(actor): Authed,
) -> Result<Json<Directory>, ApiError> {
    let users = blocking(move || app.accounts.directory(&actor)).await?;
    Ok(Json(Directory {
        items: users
            .into_iter()
            .map(|u| DirectoryEntry {
                id: u.id,
                email: u.email,
                role: u.role,
                team: u.team,
            })
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/users", request_body = NewUser, tag = "users", responses((status = 201, body = UserView), (status = 409, body = super::error::ErrorBody)))]
pub async fn create_user(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Json(b): Json<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let u = blocking(move || {
        app.accounts
            .admin_create_user(&actor, &b.email, b.role, &b.password, b.team.as_deref())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(u.into())))
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", request_body = UserPatch, tag = "users", responses((status = 200, body = UserView)))]
pub async fn update_user(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
    Json(b): Json<UserPatch>,
) -> Result<Json<UserView>, ApiError> {
    let u = blocking(move || {
        app.accounts
            .update_user(&actor, id, b.role, b.password.as_deref(), b.team.as_deref())
    })
    .await?;
    Ok(Json(u.into()))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", responses((status = 204)))]
pub async fn delete_user(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<StatusCode, ApiError> {
    blocking(move || app.accounts.delete_user(&actor, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: Id,
    pub name: String,
    pub user_id: Id,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked: bool,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        TokenView {
            id: t.id,
            name: t.name,
            user_id: t.user_id,
            created_at: rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(rfc3339),
            revoked: t.revoked,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenPage {
    pub items: Vec<TokenView>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    /// Admins may create tokens for other users.
    pub user_id: Option<Id>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub id: Id,
    pub name: String,
    /// Shown once; only its hash is kept.
    pub token: String,
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, body = TokenPage)))]
pub async fn tokens(
    State(app): State<AppState>,
    Authed(actor): Authed,
) -> Result<Json<TokenPage>, ApiError> {
    let t = blocking(move || app.accounts.tokens(&actor)).await?;
    Ok(Json(TokenPage {
        items: t.into_iter().map(TokenView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/tokens", request_body = NewToken, tag = "tokens", responses((status = 201, body = CreatedToken)))]
pub async fn create_token(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Json(b): Json<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let (t, secret) = blocking(move || {
        let uid = b.user_id.unwrap_or(actor.user_id);
        app.accounts.create_token(&actor, uid, &b.name)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id: t.id,
            name: t.name,
            token: secret,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn revoke_token(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<StatusCode, ApiError> {
    blocking(move || app.accounts.revoke_token(&actor, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
