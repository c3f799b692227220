//! An institution's Concord node (DESIGN.md §1, §4): it holds the institution's MISP data and
//! key shares, and answers the coordinator over mutual TLS. This crate is the node's logic; the
//! `concord-node` binary is a thin shell over [`run`].
//!
//! What lives where: [`service`] holds the thin gRPC handlers; [`admission`] decides on
//! proposals (policy, operator's approval, privacy budget); [`contribution`] computes, encrypts
//! and commits the institution's statistic; [`release`] verifies aggregates and gives shares at
//! most once; [`keygen`] answers key generation (CKG, threshold setup, checked by
//! [`threshold`]). The durable records are [`state`], [`audit`], [`approvals`] and
//! [`keystore`]; [`config`] reads the configuration file.

pub mod admission;
pub mod approvals;
pub mod audit;
pub mod config;
pub mod contribution;
pub mod data;
pub mod evaluation;
pub mod keygen;
pub mod keystore;
pub mod release;
pub mod service;
pub mod state;
pub mod threshold;

use concord_api::tls::{client_config, server_config, MAX_MESSAGE_BYTES};
use concord_api::v1::coordinator_client::CoordinatorClient;
use concord_api::v1::node_server::NodeServer;
use concord_api::v1::Enrolment;
use config::Config;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Keys(#[from] keystore::KeyStoreError),
    #[error("the node's certificate: {0}")]
    Certificate(String),
    #[error("TLS files: {0}")]
    Tls(std::io::Error),
    #[error("{path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("audit log {path}: {source}")]
    Audit {
        path: std::path::PathBuf,
        source: audit::AuditError,
    },
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("survey answers: {0}")]
    Survey(#[from] concord_stats::survey::SurveyError),
    #[error("MISP data: {0}")]
    Data(#[from] concord_stats::SourceError),
    #[error(transparent)]
    MispApi(#[from] concord_misp::MispApiError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Operations(#[from] concord_api::operations::OperationsError),
    #[error("server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The node's JSON views on the operations endpoint: `/budgets`, every researcher's spending
/// of this node's privacy budget per unit.
fn views(service: std::sync::Arc<service::NodeService>) -> axum::Router {
    axum::Router::new().route(
        "/budgets",
        axum::routing::get(move || {
            let service = service.clone();
            async move {
                let budgets = service
                    .budgets(None)
                    .map_err(|e| (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                let rows: Vec<serde_json::Value> = budgets
                    .into_iter()
                    .map(|(researcher, s)| {
                        serde_json::json!({
                            "researcher": researcher,
                            "unit": s.unit,
                            "epsilon_spent": s.epsilon_spent,
                            "epsilon_budget": s.epsilon_budget,
                            "delta": s.delta,
                            "queries": s.queries,
                        })
                    })
                    .collect();
                Ok::<_, (axum::http::StatusCode, String)>(axum::Json(rows))
            }
        }),
    )
}

/// Enrols with the coordinator at `url`, telling it to reach this node at `advertise`,
/// retrying until it answers (exponential backoff from 1 s to 30 s, with jitter).
async fn enrol(
    link: config::CoordinatorLink,
    (url, advertise): (String, String),
    pems: concord_api::tls::TlsPems,
) {
    use backon::Retryable;
    let attempt = || async {
        let tls = client_config(&pems.ca, &pems.certificate, &pems.key, &link.name);
        let channel = tonic::transport::Endpoint::from_shared(url.clone())?
            .tls_config(tls)?
            .connect()
            .await?;
        let member = CoordinatorClient::new(channel)
            .enrol(Enrolment {
                url: advertise.clone(),
            })
            .await?
            .into_inner();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(member)
    };
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_secs(1))
        .with_max_delay(std::time::Duration::from_secs(30))
        .without_max_times()
        .with_jitter();
    let member = attempt
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .notify(|e, wait| {
            tracing::warn!(coordinator = %url, "enrolment failed, retrying in {:.0} s: {e}", wait.as_secs_f64());
        })
        .await
        .expect("retried without end");
    tracing::info!(coordinator = %url, name = %member.name, party = member.party, "enrolled");
}

/// Loads the configuration, checks data and keys, and serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    if config.operations.is_some() {
        // before anything is recorded (the data's size, as it loads)
        concord_api::operations::recorder();
    }
    let pems = config.tls.read().map_err(NodeError::Tls)?;
    let tls = server_config(&pems.ca, &pems.certificate, &pems.key);
    // both ports first: a node that cannot listen says so and enrols nowhere (a second
    // process on a busy port must not point the coordinator at the live node's address)
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| NodeError::Listen {
            addr: config.listen,
            source,
        })?;
    let operations = match &config.operations {
        Some(ops) => Some(concord_api::operations::bind(ops).await?),
        None => None,
    };
    let events = std::sync::Arc::new(data::Events::new(data::load(&config.data).await?));
    if let Some(every) = config.data.refresh_s {
        data::refresh(
            config.data.clone(),
            std::time::Duration::from_secs(every),
            events.clone(),
        );
    }
    let keys = keystore::KeyStore::open(&config.keys_dir)?;
    let state = state::NodeState::open(&config.keys_dir.join("state.redb"))?;
    let audit_path = config.audit_log_path();
    let audit = audit::AuditLog::open(&audit_path).map_err(|source| NodeError::Audit {
        path: audit_path,
        source,
    })?;
    let survey = match &config.data.survey {
        Some(path) => Some(concord_stats::survey::load(path)?),
        None => None,
    };
    let institution = concord_stats::Institution {
        organisation_uuids: config.organisation_uuids.clone(),
        survey,
        sector: config.sector.clone(),
        organisation_type: config.organisation_type.clone(),
    };
    let service = service::NodeService::new(
        keys,
        events,
        institution,
        config.policy.clone(),
        config.coordinator_name(),
        service::Records {
            state,
            audit,
            approvals: approvals::Approvals::new(&config.approvals_path()),
        },
        service::Credentials {
            ca_pem: pems.ca.clone(),
            certificate_der: concord_api::submission::certificate_der(&pems.certificate)
                .map_err(|e| NodeError::Certificate(e.to_string()))?,
            key_pem: pems.key.clone(),
        },
    )
    .map_err(|e| NodeError::Certificate(e.to_string()))?;
    let service = std::sync::Arc::new(service);
    if let Some(listener) = operations {
        concord_api::operations::spawn(
            listener,
            concord_api::operations::router(views(service.clone()), || {}),
        );
    }
    if let Some(link) = &config.coordinator {
        if let (Some(url), Some(advertise)) = (&link.url, &link.advertise) {
            let at = (url.clone(), advertise.clone());
            tokio::spawn(enrol(link.clone(), at, pems.clone()));
        }
    }
    let service = NodeServer::from_arc(service).max_decoding_message_size(MAX_MESSAGE_BYTES);
    // gRPC health checking (grpc.health.v1): serving once the port is bound and the data loaded
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<NodeServer<service::NodeService>>()
        .await;
    tracing::info!(listen = %config.listen, "node serving");
    tonic::transport::Server::builder()
        .tls_config(tls)?
        .layer(concord_api::operations::ErrorCounter)
        .add_service(health_service)
        .add_service(service)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await?;
    Ok(())
}
