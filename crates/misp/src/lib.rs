//! A client of MISP's REST API (DESIGN.md §3), for the two places Concord meets a MISP
//! instance:
//!
//! - **Live ingestion** ([`MispApi::fetch`]): a node reads its institution's events with
//!   `POST /events/restSearch` — the API key in the `Authorization` header, `returnFormat: json`,
//!   filtered by event date (`from`, `to`), paginated (`page` from 1, `limit` events a page)
//!   until a page comes back short. An event that a later page returns again (the instance
//!   changed between pages) is counted once, by uuid. Each page is parsed by `concord-stats`
//!   ([`concord_stats::misp::events_from_json`]), which keeps only the fields statistics need.
//! - **Publishing back** ([`MispApi::publish`]): a released result, with the community's
//!   agreement, becomes a MISP event (`POST /events/add`).
//!
//! Every request has a timeout. Reads are retried with exponential backoff and jitter (`backon`) after connection
//! failures, timeouts, HTTP 429 and 5xx; other answers are not retried (a refused API key is
//! reported at once, with MISP's own message), and neither is publishing, which is not
//! idempotent. TLS is verified: against the CA file given for the MISP server (only it is
//! trusted then), else against the system's roots. The API key is read from an owner-only
//! file, held zeroized, and never shown.

use concord_stats::misp::events_from_json;
use concord_stats::Event;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// Where and how to read a MISP instance (`[data.misp]` in the node configuration).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MispApiConfig {
    /// The instance's base URL, `https://misp.example.org`.
    pub url: String,
    /// A file holding the API key (owner-only); the key never goes in the configuration.
    pub api_key_file: PathBuf,
    /// PEM file of the CA that issued the MISP server's certificate; absent: the system's roots.
    pub ca: Option<PathBuf>,
    /// Instead of a CA: the SHA-256 fingerprint of the MISP server's own certificate (hex,
    /// colons allowed, as `openssl x509 -noout -fingerprint -sha256` prints it). Only that
    /// certificate is accepted, whoever issued it and whatever names it holds: for a
    /// self-signed instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_sha256: Option<String>,
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

impl MispApiConfig {
    /// A connection to `url` with the key in `api_key_file`, default paging, timeout and retries.
    pub fn new(url: impl Into<String>, api_key_file: PathBuf) -> Self {
        Self {
            url: url.into(),
            api_key_file,
            ca: None,
            pin_sha256: None,
            from: None,
            to: None,
            page_size: default_page_size(),
            timeout_s: default_timeout_s(),
            retries: default_retries(),
        }
    }
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
    #[error("MISP at {url} answered HTTP {status} to {request} (after {attempts} attempt(s)): {message}")]
    Http {
        url: String,
        request: String,
        status: u16,
        attempts: u32,
        message: String,
    },
    #[error(
        "MISP at {url} could not be reached for {request} (after {attempts} attempt(s)): {reason}"
    )]
    Transport {
        url: String,
        request: String,
        attempts: u32,
        reason: String,
    },
    #[error("MISP at {url}, {request}: not the answer MISP gives: {reason}")]
    Format {
        url: String,
        request: String,
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

/// An event MISP created from [`MispApi::publish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: String,
    pub uuid: String,
}

/// A client of one MISP instance.
pub struct MispApi {
    config: MispApiConfig,
    base: String,
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
        if let (Some(_), Some(_)) = (&config.ca, &config.pin_sha256) {
            return Err(MispApiError::Config(
                "ca and pin_sha256 do not go together: a pinned certificate is trusted alone"
                    .into(),
            ));
        }
        if let Some(pin) = &config.pin_sha256 {
            http = http.use_preconfigured_tls(pinned::client_config(pin)?);
        }
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
            base: base.to_owned(),
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

    /// Publishes `event` (a MISP event object) as a new event; its `uuid`, if set, is kept.
    /// Not retried: adding an event is not idempotent, and a lost answer is better checked by
    /// hand (the error names the request) than risked as a duplicate.
    pub async fn publish(&self, event: &serde_json::Value) -> Result<Published, MispApiError> {
        let request = "events/add";
        let body = serde_json::json!({ "Event": event });
        let bytes = self
            .post("events/add", request, &body, false, &mut 0)
            .await?;
        let format = |reason: &str| MispApiError::Format {
            url: self.config.url.clone(),
            request: request.into(),
            reason: reason.into(),
        };
        let answer: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| format(&e.to_string()))?;
        let field = |key: &str| {
            answer["Event"][key]
                .as_str()
                .map(str::to_owned)
                .or_else(|| answer["Event"][key].as_u64().map(|n| n.to_string()))
        };
        match (field("id"), field("uuid")) {
            (Some(id), Some(uuid)) => Ok(Published { id, uuid }),
            _ => Err(format("no Event id and uuid in the answer")),
        }
    }

    /// One restSearch page.
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
        let request = format!("events/restSearch page {page}");
        let bytes = self
            .post("events/restSearch", &request, &body, true, retried)
            .await?;
        parse_page(&bytes).map_err(|reason| MispApiError::Format {
            url: self.config.url.clone(),
            request,
            reason,
        })
    }

    /// `POST {url}/{path}` with the API key: the body of a 2xx answer; errors name `request`.
    /// `retry`: after transport failures, 429 and 5xx, up to the configured retries (counted in
    /// `retried`).
    async fn post(
        &self,
        path: &str,
        request: &str,
        body: &serde_json::Value,
        retry: bool,
        retried: &mut u32,
    ) -> Result<Vec<u8>, MispApiError> {
        use backon::Retryable;
        let endpoint = format!("{}/{path}", self.base);
        let url = || self.config.url.clone();
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let once = || async {
            let attempt = attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            let answer = self
                .http
                .post(&endpoint)
                .header(reqwest::header::AUTHORIZATION, self.api_key.as_str())
                .header(reqwest::header::ACCEPT, "application/json")
                .json(body)
                .send()
                .await;
            let transport = |e: &reqwest::Error| MispApiError::Transport {
                url: url(),
                request: request.into(),
                attempts: attempt,
                reason: transport_reason(e),
            };
            let response = answer.map_err(|e| transport(&e))?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await.map_err(|e| transport(&e))?;
            match status {
                200..=299 => Ok(bytes.to_vec()),
                401 | 403 => Err(MispApiError::Auth {
                    url: url(),
                    status,
                    message: misp_message(&bytes),
                }),
                _ => Err(MispApiError::Http {
                    url: url(),
                    request: request.into(),
                    status,
                    attempts: attempt,
                    message: misp_message(&bytes),
                }),
            }
        };
        // exponential backoff from 250 ms, with jitter, after what a later try may cure:
        // transport failures, 429 and 5xx (never a refused key or a wrong request)
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(16))
            .with_max_times(if retry {
                self.config.retries as usize
            } else {
                0
            })
            .with_jitter();
        let mut tries = 0u32;
        let result = once
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| match e {
                MispApiError::Transport { .. } => true,
                MispApiError::Http { status, .. } => *status == 429 || *status >= 500,
                _ => false,
            })
            .notify(|failure, _| {
                tries += 1;
                tracing::warn!("{failure}; retrying");
            })
            .await;
        *retried += tries;
        result
    }
}

/// The events of one restSearch page: `{"response": [...]}` (an empty page may also come as
/// `[]` or `{"response": []}`).
fn parse_page(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    match &value {
        serde_json::Value::Array(items) if items.is_empty() => Ok(Vec::new()),
        serde_json::Value::Object(map)
            if matches!(map.get("response"), Some(serde_json::Value::Array(_))) =>
        {
            events_from_json(value).map_err(|e| e.to_string())
        }
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

/// TLS to a MISP instance whose own certificate is pinned by its SHA-256 fingerprint.
mod pinned {
    use super::MispApiError;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use sha2::{Digest, Sha256};
    use std::sync::Arc;

    /// A client configuration that accepts only the certificate of fingerprint `pin`; the
    /// handshake's signatures are still checked against that certificate's key.
    pub fn client_config(pin: &str) -> Result<rustls::ClientConfig, MispApiError> {
        let digits: String = pin.chars().filter(|c| *c != ':').collect();
        let digest: [u8; 32] = hex::decode(digits)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                MispApiError::Config(format!(
                    "pin_sha256 {pin:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)"
                ))
            })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| MispApiError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned { digest, provider }))
            .with_no_client_auth();
        Ok(config)
    }

    #[derive(Debug)]
    struct Pinned {
        digest: [u8; 32],
        provider: Arc<CryptoProvider>,
    }

    impl ServerCertVerifier for Pinned {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let seen = Sha256::digest(end_entity.as_ref());
            if seen[..] == self.digest[..] {
                Ok(ServerCertVerified::assertion())
            } else {
                let hex: Vec<String> = seen.iter().map(|b| format!("{b:02X}")).collect();
                Err(rustls::Error::General(format!(
                    "the server's certificate (SHA-256 {}) is not the pinned one",
                    hex.join(":")
                )))
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
}
