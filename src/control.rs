//! A local control socket (`<data_dir>/control.sock`, mode 0600) through which CLI commands
//! reach a running server that holds the store lock: backups, and creating users and API
//! tokens. Access to the socket is access to the data dir (the same trust as the CLI opening
//! the store itself). One JSON request line, one JSON reply line.

use crate::app::App;
use crate::model::Role;
use crate::policy::Actor;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Backup {
        path: PathBuf,
    },
    UserCreate {
        email: String,
        role: Role,
        password: String,
    },
    TokenCreate {
        email: String,
        name: String,
    },
    /// Walk the audit chain; `ok` is false when it is broken.
    AuditVerify,
    /// The audit entries matching the filters, in `message` (JSON lines or CSV).
    AuditExport {
        #[serde(default)]
        record: Option<String>,
        #[serde(default)]
        actor: Option<String>,
        #[serde(default)]
        since: Option<String>,
        #[serde(default)]
        format: Option<String>,
    },
    /// Everything held about a contact, as JSON in `message`.
    GdprExport {
        id: u64,
    },
    /// Erase a contact; the outcome as JSON in `message`.
    GdprErase {
        id: u64,
    },
}

/// Runs a GDPR request as the operator (the command line has the data dir, and so
/// everything); the JSON answer, or what went wrong.
pub fn gdpr(app: &App, req: &Request) -> Result<String, String> {
    let json = |v: Result<serde_json::Value, crate::gdpr::GdprError>| match v {
        Ok(v) => serde_json::to_string_pretty(&v).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let system = Actor::system();
    match req {
        Request::GdprExport { id } => json(
            app.gdpr
                .export(&system, *id)
                .map(|x| serde_json::to_value(x).unwrap_or_default()),
        ),
        Request::GdprErase { id } => json(
            app.gdpr
                .erase(&system, *id)
                .map(|x| serde_json::to_value(x).unwrap_or_default()),
        ),
        _ => Err("not a GDPR request".into()),
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot reach the running server through {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Remote(String),
    #[error("i/o error on the control socket: {0}")]
    Io(#[from] std::io::Error),
}

fn handle(app: &App, req: Request) -> Reply {
    let fail = |m: String| Reply {
        ok: false,
        message: m,
        secret: None,
    };
    match req {
        Request::Backup { path } => match app.store.backup_to(&path) {
            Ok(rows) => Reply {
                ok: true,
                message: format!("{rows} records"),
                secret: None,
            },
            Err(e) => fail(e.to_string()),
        },
        Request::UserCreate {
            email,
            role,
            password,
        } => match app.accounts.create_user(&email, role, &password) {
            Ok(u) => Reply {
                ok: true,
                message: format!("created user {} ({}) with id {}", u.email, u.role, u.id),
                secret: None,
            },
            Err(e) => fail(e.to_string()),
        },
        Request::TokenCreate { email, name } => {
            let email = email.trim().to_lowercase();
            match app.store.user_by_email(&email) {
                Ok(Some(user)) => match app.accounts.create_token(&Actor::system(), user.id, &name)
                {
                    Ok((t, secret)) => Reply {
                        ok: true,
                        message: format!(
                            "created token {} '{}' for {} (shown once; store it now):",
                            t.id, t.name, user.email
                        ),
                        secret: Some(secret),
                    },
                    Err(e) => fail(e.to_string()),
                },
                Ok(None) => fail(format!("no user with the email {email}")),
                Err(e) => fail(e.to_string()),
            }
        }
        Request::AuditVerify => match app.audit.verify(&Actor::system()) {
            Ok(report) => Reply {
                ok: report.intact(),
                message: crate::audit::describe_report(&report),
                secret: None,
            },
            Err(e) => fail(e.to_string()),
        },
        r @ (Request::GdprExport { .. } | Request::GdprErase { .. }) => match gdpr(app, &r) {
            Ok(text) => Reply {
                ok: true,
                message: text,
                secret: None,
            },
            Err(m) => fail(m),
        },
        Request::AuditExport {
            record,
            actor,
            since,
            format,
        } => {
            let run = || -> Result<String, crate::audit::AuditError> {
                let f =
                    crate::audit::filter(record.as_deref(), actor.as_deref(), since.as_deref())?;
                let format: crate::audit::Format = format.as_deref().unwrap_or("").parse()?;
                let mut out = Vec::new();
                app.audit.export(&Actor::system(), &f, format, &mut out)?;
                Ok(String::from_utf8_lossy(&out).into_owned())
            };
            match run() {
                Ok(text) => Reply {
                    ok: true,
                    message: text,
                    secret: None,
                },
                Err(e) => fail(e.to_string()),
            }
        }
    }
}

/// Serves the control socket until the task is dropped.
pub async fn serve<S>(app: Arc<S>, data_dir: PathBuf) -> std::io::Result<()>
where
    S: std::ops::Deref<Target = App> + Send + Sync + 'static,
{
    let path = socket_path(&data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    loop {
        let (stream, _) = listener.accept().await?;
        let app = app.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(r)
                .take(64 * 1024)
                .read_line(&mut line)
                .await
                .is_err()
            {
                return;
            }
            let reply = match serde_json::from_str::<Request>(&line) {
                Ok(req) => tokio::task::spawn_blocking(move || handle(&app, req))
                    .await
                    .unwrap_or_else(|e| Reply {
                        ok: false,
                        message: e.to_string(),
                        secret: None,
                    }),
                Err(e) => Reply {
                    ok: false,
                    message: format!("bad request: {e}"),
                    secret: None,
                },
            };
            let mut out = serde_json::to_string(&reply).unwrap_or_default();
            out.push('\n');
            let _ = w.write_all(out.as_bytes()).await;
        });
    }
}

/// Sends one request to the server holding `data_dir`.
pub fn request(data_dir: &Path, req: &Request) -> Result<Reply, ControlError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let path = socket_path(data_dir);
        let stream = tokio::net::UnixStream::connect(&path)
            .await
            .map_err(|source| ControlError::Connect {
                path: path.clone(),
                source,
            })?;
        let (r, mut w) = stream.into_split();
        let mut line =
            serde_json::to_string(req).map_err(|e| ControlError::Remote(e.to_string()))?;
        line.push('\n');
        w.write_all(line.as_bytes()).await?;
        let mut answer = String::new();
        BufReader::new(r).read_line(&mut answer).await?;
        let reply: Reply = serde_json::from_str(&answer).map_err(|_| {
            ControlError::Remote(format!("unexpected reply '{}'", answer.trim_end()))
        })?;
        if reply.ok {
            Ok(reply)
        } else {
            Err(ControlError::Remote(reply.message))
        }
    })
}
