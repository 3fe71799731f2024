//! `/api/v1/contacts` and `/api/v1/lists`.

use super::AppState;
use super::auth::Authed;
use super::error::{ApiError, Json, Path, Query, blocking};
use crate::contacts::ContactInput;
use crate::model::{Contact, Id, MailingList, OptIn};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Body of `POST /api/v1/contacts` and `PATCH /api/v1/contacts/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub phone: Option<String>,
    pub tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<BTreeMap<String, serde_json::Value>>,
    /// List ids; replaces the contact's memberships.
    pub lists: Option<Vec<Id>>,
    /// Owner user id (null: unassigned).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub owner_id: Option<Option<Id>>,
    /// CRM account id (null: none).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub account_id: Option<Option<Id>>,
}

pub fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<Id>>, D::Error> {
    Option::<Id>::deserialize(d).map(Some)
}

impl From<ContactBody> for ContactInput {
    fn from(b: ContactBody) -> Self {
        ContactInput {
            email: b.email,
            first_name: b.first_name,
            last_name: b.last_name,
            company: b.company,
            phone: b.phone,
            tags: b.tags,
            attributes: b.attributes,
            lists: b.lists,
            owner_id: b.owner_id,
            account_id: b.account_id,
            consents: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SearchParams {
    /// Search text: words (prefix and typo tolerant) and filters such as `tag:certified company:acme`.
    pub q: Option<String>,
    /// Page size, 1 to 100 (default 25).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ContactPage {
    pub items: Vec<Contact>,
    pub next_cursor: Option<String>,
    pub total: u64,
}

#[utoipa::path(get, path = "/api/v1/contacts", params(SearchParams), tag = "contacts",
    responses((status = 200, body = ContactPage), (status = 422, body = super::error::ErrorBody)))]
pub async fn search(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Query(p): Query<SearchParams>,
) -> Result<Json<ContactPage>, ApiError> {
    let page = blocking(move || {
        app.contacts.search(
            &actor,
            p.q.as_deref().unwrap_or(""),
            p.cursor.as_deref(),
            p.limit.unwrap_or(25),
        )
    })
    .await?;
    Ok(Json(ContactPage {
        items: page.items,
        next_cursor: page.next_cursor,
        total: page.total,
    }))
}

#[utoipa::path(post, path = "/api/v1/contacts", request_body = ContactBody, tag = "contacts",
    responses((status = 201, body = Contact), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Json(body): Json<ContactBody>,
) -> Result<(StatusCode, Json<Contact>), ApiError> {
    let input: ContactInput = body.into();
    let c = blocking(move || app.contacts.create(&actor, &input)).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts",
    responses((status = 200, body = Contact), (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<Contact>, ApiError> {
    Ok(Json(blocking(move || app.contacts.get(&actor, id)).await?))
}

#[utoipa::path(patch, path = "/api/v1/contacts/{id}", request_body = ContactBody, tag = "contacts",
    responses((status = 200, body = Contact), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn update(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
    Json(body): Json<ContactBody>,
) -> Result<Json<Contact>, ApiError> {
    let input: ContactInput = body.into();
    Ok(Json(
        blocking(move || app.contacts.update(&actor, id, &input)).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "contacts",
    responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn delete(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<StatusCode, ApiError> {
    blocking(move || app.contacts.delete(&actor, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- lists ----

#[derive(Serialize, utoipa::ToSchema)]
pub struct ListView {
    #[serde(flatten)]
    pub list: MailingList,
    pub member_count: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ListPage {
    pub items: Vec<ListView>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub opt_in: Option<OptIn>,
}

#[utoipa::path(get, path = "/api/v1/lists", tag = "lists", responses((status = 200, body = ListPage)))]
pub async fn lists(
    State(app): State<AppState>,
    Authed(actor): Authed,
) -> Result<Json<ListPage>, ApiError> {
    let items = blocking(move || app.contacts.lists(&actor)).await?;
    Ok(Json(ListPage {
        items: items
            .into_iter()
            .map(|(list, member_count)| ListView { list, member_count })
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/lists", request_body = ListBody, tag = "lists",
    responses((status = 201, body = ListView), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_list(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Json(body): Json<ListBody>,
) -> Result<(StatusCode, Json<ListView>), ApiError> {
    let list = blocking(move || {
        app.contacts.create_list(
            &actor,
            body.name.as_deref().unwrap_or(""),
            body.description.as_deref().unwrap_or(""),
            body.opt_in.unwrap_or(OptIn::Single),
        )
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ListView {
            list,
            member_count: 0,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/lists/{id}", tag = "lists", responses((status = 200, body = ListView), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_list(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<ListView>, ApiError> {
    let (list, member_count) = blocking(move || app.contacts.list(&actor, id)).await?;
    Ok(Json(ListView { list, member_count }))
}

#[utoipa::path(patch, path = "/api/v1/lists/{id}", request_body = ListBody, tag = "lists", responses((status = 200, body = ListView)))]
pub async fn update_list(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
    Json(body): Json<ListBody>,
) -> Result<Json<ListView>, ApiError> {
    let (list, member_count) = blocking(move || {
        app.contacts.update_list(
            &actor,
            id,
            body.name.as_deref(),
            body.description.as_deref(),
            body.opt_in,
        )?;
        app.contacts.list(&actor, id)
    })
    .await?;
    Ok(Json(ListView { list, member_count }))
}

#[utoipa::path(delete, path = "/api/v1/lists/{id}", tag = "lists", responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn delete_list(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<StatusCode, ApiError> {
    blocking(move || app.contacts.delete_list(&actor, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
