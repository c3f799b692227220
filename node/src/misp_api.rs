//! Live MISP ingestion (DESIGN.md §3): a node reads its institution's events from a MISP
//! instance over the REST API — `POST /events/restSearch` with the API key in the
//! `Authorization` header, `returnFormat: json`, filtered by event date (`from`, `to`) and
//! paginated (`page` from 1, `limit` events a page) until a page comes back short.
//!
//! Every request has a timeout; connection failures, timeouts, HTTP 429 and 5xx are retried
//! with exponential backoff, other answers are not (a refused API key is reported at once, with
//! MISP's own message). TLS is verified: against the CA file given for the MISP server
//! (only it is trusted then), else against the system's roots. An event that a later page
//! returns again (the instance changed between pages) is counted once, by uuid. Each page is
//! parsed by `concord-stats` ([`concord_stats::parse_events`]), which keeps only the fields
//! statistics need.

use concord_stats::{parse_events, Event};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// Where and how to read a MISP instance (`[data.misp]` in the node configuration).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MispApiConfig {
    /// The instance's base URL, `https://misp.example.org`.
    pub url: String,
    /// A file holding the API key (owner-only); the key never goes in the configuration.
    pub api_key_file: PathBuf,
    /// PEM file of the CA that issued the MISP server's certificate; absent: the system's roots.
    pub ca: Option<PathBuf>,
    /// Only events dated on or after this day (`YYYY-MM-DD`).
    pub from: Option<String>,
    /// Only events dated on or before this day.
    pub to: Option<String>,
    /// Events per page.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Seconds one request may take.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    /// Further attempts after a failed request (timeouts, connection errors, 429, 5xx).
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_page_size() -> u32 {
    100
}
fn default_timeout_s() -> u64 {
    60
}
fn default_retries() -> u32 {
    3
}

#[derive(Debug, thiserror::Error)]
pub enum MispApiError {
    #[error("MISP API key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("MISP CA file {path}: {reason}")]
    Ca { path: PathBuf, reason: String },
    #[error("MISP configuration: {0}")]
    Config(String),
    #[error("MISP at {url} refused the API key (HTTP {status}): {message}")]
    Auth {
        url: String,
        status: u16,
        message: String,
    },
    #[error("MISP at {url} answered HTTP {status} for page {page} (after {attempts} attempt(s)): {message}")]
    Http {
        url: String,
        page: u32,
        status: u16,
        attempts: u32,
        message: String,
    },
    #[error(
        "MISP at {url} could not be read for page {page} (after {attempts} attempt(s)): {reason}"
    )]
    Transport {
        url: String,
        page: u32,
        attempts: u32,
        reason: String,
    },
    #[error("MISP at {url}, page {page}: not an events/restSearch answer: {reason}")]
    Format {
        url: String,
        page: u32,
        reason: String,
    },
    #[error("MISP at {url} returned page {page} full of events it had already returned: it does not paginate restSearch")]
    Pagination { url: String, page: u32 },
}

/// What a fetch read.
#[derive(Debug, Default)]
pub struct Fetched {
    pub events: Vec<Event>,
    /// Pages requested (the last one short or empty).
    pub pages: u32,
    /// Events returned again by a later page, counted once.
    pub duplicates: usize,
    /// Requests that failed and were retried.
    pub retried: u32,
}

/// A client of one MISP instance.
pub struct MispApi {
    config: MispApiConfig,
    endpoint: String,
    api_key: Zeroizing<String>,
    http: reqwest::Client,
}

impl MispApi {
    pub fn new(config: MispApiConfig) -> Result<Self, MispApiError> {
        let base = config.url.trim_end_matches('/');
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(MispApiError::Config(format!(
                "url must be an http(s):// address, not {:?}",
                config.url
            )));
        }
        if config.page_size == 0 || config.timeout_s == 0 {
            return Err(MispApiError::Config(
                "page_size and timeout_s must be positive".into(),
            ));
        }
        for day in [&config.from, &config.to].into_iter().flatten() {
            if concord_stats::misp::Date::parse(day).is_none() {
                return Err(MispApiError::Config(format!(
                    "{day:?} is not a date (YYYY-MM-DD)"
                )));
            }
        }
        let api_key = read_key(&config.api_key_file)?;
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_s))
            .connect_timeout(Duration::from_secs(config.timeout_s))
            .user_agent(concat!("concord-node/", env!("CARGO_PKG_VERSION")))
            .https_only(base.starts_with("https://"));
        if let Some(path) = &config.ca {
            let ca_error = |reason: String| MispApiError::Ca {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let ca = reqwest::Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
            http = http.tls_built_in_root_certs(false).add_root_certificate(ca);
        }
        let http = http
            .build()
            .map_err(|e| MispApiError::Config(e.to_string()))?;
        Ok(Self {
            endpoint: format!("{base}/events/restSearch"),
            config,
            api_key,
            http,
        })
    }

    /// Every event of the instance in the configured date range, each once.
    pub async fn fetch(&self) -> Result<Fetched, MispApiError> {
        let mut fetched = Fetched::default();
        let mut seen = HashSet::new();
        for page in 1.. {
            let events = self.page(page, &mut fetched.retried).await?;
            fetched.pages = page;
            let returned = events.len();
            let mut new = 0;
            for event in events {
                match &event.uuid {
                    Some(uuid) if !seen.insert(uuid.clone()) => fetched.duplicates += 1,
                    _ => {
                        new += 1;
                        fetched.events.push(event);
                    }
                }
            }
            if returned < self.config.page_size as usize {
                break;
            }
            if new == 0 {
                return Err(MispApiError::Pagination {
                    url: self.config.url.clone(),
                    page,
                });
            }
        }
        Ok(fetched)
    }

    /// One page, with retries.
    async fn page(&self, page: u32, retried: &mut u32) -> Result<Vec<Event>, MispApiError> {
        let mut body = serde_json::json!({
            "returnFormat": "json",
            "page": page,
            "limit": self.config.page_size,
        });
        if let Some(from) = &self.config.from {
            body["from"] = from.as_str().into();
        }
        if let Some(to) = &self.config.to {
            body["to"] = to.as_str().into();
        }
        let url = self.config.url.clone();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt > self.config.retries;
            let answer = self
                .http
                .post(&self.endpoint)
                .header(reqwest::header::AUTHORIZATION, self.api_key.as_str())
                .header(reqwest::header::ACCEPT, "application/json")
                .json(&body)
                .send()
                .await;
            let failure = match answer {
                Err(e) => MispApiError::Transport {
                    url: url.clone(),
                    page,
                    attempts: attempt,
                    reason: transport_reason(&e),
                },
                Ok(response) => {
                    let status = response.status();
                    let text = response.bytes().await;
                    match (status.as_u16(), text) {
                        (_, Err(e)) => MispApiError::Transport {
                            url: url.clone(),
                            page,
                            attempts: attempt,
                            reason: transport_reason(&e),
                        },
                        (200..=299, Ok(bytes)) => {
                            return parse_page(&bytes).map_err(|reason| MispApiError::Format {
                                url,
                                page,
                                reason,
                            })
                        }
                        (status @ (401 | 403), Ok(bytes)) => {
                            return Err(MispApiError::Auth {
                                url,
                                status,
                                message: misp_message(&bytes),
                            })
                        }
                        (status, Ok(bytes)) => {
                            let error = MispApiError::Http {
                                url: url.clone(),
                                page,
                                status,
                                attempts: attempt,
                                message: misp_message(&bytes),
                            };
                            if !(status == 429 || status >= 500) {
                                return Err(error); // the request itself is wrong: no retry
                            }
                            error
                        }
                    }
                }
            };
            if last {
                return Err(failure);
            }
            *retried += 1;
            tracing::warn!("{failure}; retrying");
            tokio::time::sleep(Duration::from_millis(250 << (attempt - 1).min(6))).await;
        }
    }
}

/// The events of one restSearch page: `{"response": [...]}` (an empty page may also come as
/// `[]` or `{"response": []}`).
fn parse_page(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    match &value {
        serde_json::Value::Array(items) if items.is_empty() => Ok(Vec::new()),
        serde_json::Value::Object(map) => match map.get("response") {
            Some(serde_json::Value::Array(items)) if items.is_empty() => Ok(Vec::new()),
            Some(serde_json::Value::Array(_)) => parse_events(bytes).map_err(|e| e.to_string()),
            _ => Err("no \"response\" list".into()),
        },
        _ => Err("expected {\"response\": [...]}".into()),
    }
}

/// MISP's own error message (`{"name": …, "message": …}`), or the start of the body.
fn misp_message(bytes: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(bytes).ok();
    let field = |key| {
        parsed
            .as_ref()
            .and_then(|v| v.get(key))
            .and_then(|m| m.as_str())
            .map(str::to_owned)
    };
    field("message")
        .or_else(|| field("name"))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            if text.is_empty() {
                "(empty answer)".into()
            } else {
                text.chars().take(200).collect()
            }
        })
}

/// A transport error with its causes (reqwest's own message is terse).
fn transport_reason(e: &reqwest::Error) -> String {
    let mut reason = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    reason
}

fn read_key(path: &Path) -> Result<Zeroizing<String>, MispApiError> {
    let error = |reason: String| MispApiError::Key {
        path: path.to_owned(),
        reason,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| error(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(error(format!(
                "readable by others (mode {:o}): make it owner-only (chmod 600)",
                mode & 0o777
            )));
        }
    }
    let key = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?);
    let key = Zeroizing::new(key.trim().to_owned());
    if key.is_empty() {
        return Err(error("empty".into()));
    }
    Ok(key)
}
