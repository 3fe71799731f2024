//! The one error shape of the API: `{"error": {"code", "message", "field"?}}` with a stable
//! code and an HTTP status, converted from each layer's typed errors.

use crate::accounts::AccountError;
use crate::contacts::ContactError;
use crate::import::ImportError;
use crate::policy::Denied;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Where in the submitted text (template, filter) the problem is.
    pub location: Option<Location>,
}

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// 1-based line and column in the submitted text, when the error has a place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            location: None,
        }
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.location = Some(Location { line, column });
        self
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; it has been logged",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                field: self.field,
                line: self.location.map(|l| l.line),
                column: self.location.map(|l| l.column),
            },
        };
        let mut r = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"mailstead\""),
            );
        }
        r
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::NotVisible => ApiError::not_found("record"),
            Denied::Forbidden { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", d.to_string())
            }
        }
    }
}

impl From<ContactError> for ApiError {
    fn from(e: ContactError) -> Self {
        match e {
            ContactError::Invalid { field, message } => {
                let code = if field == "email" {
                    "invalid_email"
                } else {
                    "invalid_field"
                };
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).field(field)
            }
            ContactError::Duplicate(email) => ApiError::new(
                StatusCode::CONFLICT,
                "duplicate_email",
                format!("a contact with the email {email} already exists"),
            )
            .field("email"),
            ContactError::NotFound(what) => ApiError::not_found(what),
            ContactError::Denied(d) => d.into(),
            ContactError::Query(q) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_query",
                format!("{} (at character {})", q.message, q.position + 1),
            )
            .field("q"),
            ContactError::Store(e) => ApiError::internal(e),
            ContactError::Search(e) => ApiError::internal(e),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                e.to_string(),
            ),
            AccountError::Throttled => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", e.to_string())
            }
            AccountError::Unauthenticated => {
                ApiError::unauthenticated("log in or send an API token (Authorization: Bearer ...)")
            }
            AccountError::SessionExpired => {
                ApiError::new(StatusCode::UNAUTHORIZED, "session_expired", e.to_string())
            }
            AccountError::Invalid { field, message } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
                    .field(field)
            }
            AccountError::Duplicate(_) => {
                ApiError::new(StatusCode::CONFLICT, "duplicate_email", e.to_string()).field("email")
            }
            AccountError::NotFound(what) => ApiError::not_found(what),
            AccountError::Denied(d) => d.into(),
            AccountError::Store(e) => ApiError::internal(e),
            AccountError::Hash => ApiError::internal("password hashing failed"),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::NotFound(what) => ApiError::not_found(what),
            other => ApiError::internal(other),
        }
    }
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Contact(c) => c.into(),
            other => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_csv",
                other.to_string(),
            ),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::bad_request(format!("the body is not valid JSON: {}", e.body_text()))
                    .with_code("invalid_json")
            }
            JsonRejection::JsonDataError(e) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!(
                    "the JSON does not have the expected shape: {}",
                    e.body_text()
                ),
            ),
            JsonRejection::BytesRejection(e) => {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "the request body is too large",
                    )
                } else {
                    ApiError::bad_request(e.body_text())
                }
            }
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query string: {}", r.body_text()))
            .with_code("invalid_query_string")
    }
}

impl ApiError {
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }
}

/// JSON body extractor whose rejections use the API error shape.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query-string extractor whose rejections use the API error shape.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request(format!("invalid path: {}", r.body_text())).with_code("invalid_path")
    }
}

/// Path extractor whose rejections use the API error shape.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Runs blocking store/index work off the async runtime.
pub async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Into::into),
        Err(e) => Err(ApiError::internal(e)),
    }
}
