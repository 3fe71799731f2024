//! A local control socket (`<data_dir>/control.sock`, mode 0600) through which CLI commands
//! reach a running server that holds the store lock. Access to the socket is access to the
//! data dir. One request line, one reply line: `backup <path>` → `ok <rows>` | `error <text>`.

use crate::store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot reach the running server through {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the server answered: {0}")]
    Remote(String),
    #[error("i/o error on the control socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves the control socket until the task is dropped.
pub async fn serve(store: Arc<Store>, data_dir: PathBuf) -> std::io::Result<()> {
    let path = socket_path(&data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    loop {
        let (stream, _) = listener.accept().await?;
        let store = store.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(r).take(4096);
            if reader.read_line(&mut line).await.is_err() {
                return;
            }
            let reply = match line.trim_end().split_once(' ') {
                Some(("backup", dest)) => {
                    let dest = PathBuf::from(dest);
                    match tokio::task::spawn_blocking(move || store.backup_to(&dest)).await {
                        Ok(Ok(rows)) => format!("ok {rows}\n"),
                        Ok(Err(e)) => format!("error {e}\n"),
                        Err(e) => format!("error {e}\n"),
                    }
                }
                _ => "error unknown command\n".to_string(),
            };
            let _ = w.write_all(reply.as_bytes()).await;
        });
    }
}

use tokio::io::AsyncReadExt as _;

/// Asks the running server to write a backup to `dest` (an absolute path).
pub async fn request_backup(data_dir: &Path, dest: &Path) -> Result<u64, ControlError> {
    let path = socket_path(data_dir);
    let stream = tokio::net::UnixStream::connect(&path)
        .await
        .map_err(|source| ControlError::Connect {
            path: path.clone(),
            source,
        })?;
    let (r, mut w) = stream.into_split();
    w.write_all(format!("backup {}\n", dest.display()).as_bytes())
        .await?;
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).await?;
    match line.trim_end().split_once(' ') {
        Some(("ok", n)) => Ok(n.parse().unwrap_or(0)),
        Some(("error", m)) => Err(ControlError::Remote(m.to_string())),
        _ => Err(ControlError::Remote(format!(
            "unexpected reply '{}'",
            line.trim_end()
        ))),
    }
}
