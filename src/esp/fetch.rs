//! The only outbound HTTP of the webhook receiver: HTTPS GETs of SNS signing certificates
//! and subscription confirmation URLs, with the public web PKI (webpki-roots), no redirects,
//! short timeouts and a cap on the response size. Callers check the URL first.

use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the HTTPS client could not be built: {0}")]
    Client(String),
    #[error("the server answered HTTP {0}")]
    Status(u16),
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    #[error("could not fetch: {0}")]
    Network(String),
}

impl FetchError {
    /// The server answered that the resource does not exist or is refused (4xx): retrying
    /// does not help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, FetchError::Status(s) if (400..500).contains(s))
    }
}

/// A shareable HTTPS client (cheap to clone).
#[derive(Clone)]
pub struct Fetcher {
    client: Result<reqwest::Client, Arc<str>>,
}

impl Default for Fetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Fetcher {
    pub fn new() -> Fetcher {
        Fetcher {
            client: build().map_err(|e| Arc::from(e.as_str())),
        }
    }

    /// GETs `url` and returns the body of a 2xx answer, at most `max` bytes.
    pub async fn get(&self, url: &str, max: usize) -> Result<Vec<u8>, FetchError> {
        let client = self
            .client
            .as_ref()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        let mut resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| FetchError::Network(without_url(&e)))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(FetchError::Status(status));
        }
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(FetchError::TooLarge(max));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| FetchError::Network(without_url(&e)))?
        {
            if body.len() + chunk.len() > max {
                return Err(FetchError::TooLarge(max));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// reqwest's messages repeat the URL, which for subscription confirmations carries a token.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<url>");
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn build() -> Result<reqwest::Client, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("Mailstead/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_are_errors_not_panics() {
        let f = Fetcher::new();
        assert!(f.client.is_ok(), "the HTTPS client builds");
        // nothing listens on port 1; plain http is refused outright
        for url in [
            "https://127.0.0.1:1/x.pem",
            "http://127.0.0.1:1/x.pem",
            "not a url",
        ] {
            let e = f.get(url, 1024).await.unwrap_err();
            assert!(!e.is_permanent(), "{url}: {e}");
        }
        assert!(FetchError::Status(404).is_permanent());
        assert!(!FetchError::Status(503).is_permanent());
    }
}
