//! `/api/v1/imports`: the CSV body is streamed to a spool file in the data dir (never held
//! in memory), the job is recorded, 202 is answered and the import runs in the background.

use super::AppState;
use super::auth::Authed;
use super::error::{ApiError, Json, Path, Query, blocking};
use crate::import::{ImportOptions, run};
use crate::model::{Id, ImportJob, ImportMode};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ImportParams {
    /// Add every imported contact to this list.
    pub list: Option<Id>,
    /// `upsert` (default) updates existing contacts; `create` skips them.
    pub mode: Option<ImportMode>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub id: Id,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportPage {
    pub items: Vec<ImportJob>,
}

#[utoipa::path(post, path = "/api/v1/imports", params(ImportParams), tag = "imports",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 202, body = Accepted), (status = 413, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Query(p): Query<ImportParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    actor.check_import()?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !matches!(mime.as_str(), "text/csv" | "application/csv" | "text/plain") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the CSV file as the body with Content-Type: text/csv",
        ));
    }
    if let Some(l) = p.list {
        let a2 = app.clone();
        let found = blocking(move || a2.store.list(l)).await?;
        if found.is_none() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("list {l} does not exist"),
            )
            .field("list"));
        }
    }
    let spool_dir = app.settings.data_dir.join("imports");
    tokio::fs::create_dir_all(&spool_dir)
        .await
        .map_err(ApiError::internal)?;
    let spool = spool_dir.join(format!("upload-{}.csv", rand::random::<u64>()));
    let mut file = tokio::fs::File::create(&spool)
        .await
        .map_err(ApiError::internal)?;
    let limit = app.settings.max_import_bytes;
    let mut written: u64 = 0;
    let mut stream = body.into_data_stream();
    let outcome: Result<(), ApiError> = async {
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
            written += chunk.len() as u64;
            if written > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the CSV is larger than the limit of {limit} bytes (max_import_bytes)"),
                ));
            }
            file.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        file.flush().await.map_err(ApiError::internal)?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err(e) = outcome {
        let _ = tokio::fs::remove_file(&spool).await;
        return Err(e);
    }
    let mode = p.mode.unwrap_or(ImportMode::Upsert);
    let a2 = app.clone();
    let user_id = actor.user_id;
    let job = blocking(move || {
        a2.store
            .create_import(ImportJob::new(mode, p.list, Some(user_id)))
    })
    .await?;
    let id = job.id;
    let a3 = app.clone();
    tokio::task::spawn_blocking(move || {
        let mut job = job;
        let opts = ImportOptions {
            mode,
            list_id: p.list,
            source: format!("import:{id}"),
        };
        let result = std::fs::File::open(&spool)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                let mut last_save = std::time::Instant::now();
                let mut prev = 0;
                run(
                    &a3.contacts,
                    &actor,
                    std::io::BufReader::new(f),
                    &opts,
                    &mut job,
                    |j| {
                        a3.metrics.imported_rows.inc_by(j.processed - prev);
                        prev = j.processed;
                        if last_save.elapsed().as_millis() >= 250 {
                            last_save = std::time::Instant::now();
                            if let Err(e) = a3.store.save_import(j) {
                                tracing::warn!(error = %e, "could not save import progress");
                            }
                        }
                    },
                )
                .map_err(|e| e.to_string())
            });
        job.finish(result);
        if let Err(e) = a3.audit.save_import(&actor, &job) {
            tracing::error!(error = %e, import = id, "could not save the import result");
        }
        let _ = std::fs::remove_file(&spool);
        tracing::info!(
            import = id,
            processed = job.processed,
            created = job.created,
            updated = job.updated,
            errors = job.error_count,
            "import finished"
        );
    });
    Ok((StatusCode::ACCEPTED, Json(Accepted { id })))
}

#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "imports", responses((status = 200, body = ImportJob), (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(app): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<Id>,
) -> Result<Json<ImportJob>, ApiError> {
    let job = blocking(move || app.store.import(id))
        .await?
        .ok_or_else(|| ApiError::not_found("import"))?;
    if !actor.sees_import(job.user_id) {
        return Err(ApiError::not_found("import"));
    }
    Ok(Json(job))
}

#[utoipa::path(get, path = "/api/v1/imports", tag = "imports", responses((status = 200, body = ImportPage)))]
pub async fn list(
    State(app): State<AppState>,
    Authed(actor): Authed,
) -> Result<Json<ImportPage>, ApiError> {
    let jobs = blocking(move || app.store.imports(50)).await?;
    Ok(Json(ImportPage {
        items: jobs
            .into_iter()
            .filter(|j| actor.sees_import(j.user_id))
            .collect(),
    }))
}
