//! An institution's Concord node (DESIGN.md §1, §4): it holds the institution's MISP data and
//! key shares, and answers the coordinator over mutual TLS. This crate is the node's logic; the
//! `concord-node` binary is a thin shell over [`run`].

pub mod config;
pub mod keystore;
pub mod service;
pub mod state;

use concord_api::tls::{server_config, MAX_MESSAGE_BYTES};
use concord_api::v1::node_server::NodeServer;
use config::Config;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Keys(#[from] keystore::KeyStoreError),
    #[error("TLS files: {0}")]
    Tls(std::io::Error),
    #[error("{path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("MISP data: {0}")]
    Data(#[from] concord_stats::SourceError),
    #[error("server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Loads the configuration, checks data and keys, and serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    let pems = config.tls.read().map_err(|source| NodeError::Read {
        path: config.tls.certificate.clone(),
        source,
    })?;
    let tls = server_config(&pems.ca, &pems.certificate, &pems.key);
    let data = concord_stats::load(&config.data.path)?;
    tracing::info!(
        events = data.events.len(),
        files = data.report.files_read,
        unusable = data.report.errors.len(),
        path = %config.data.path.display(),
        "MISP data loaded"
    );
    for e in &data.report.errors {
        tracing::warn!("not used: {e}");
    }
    let keys = keystore::KeyStore::open(&config.keys_dir)?;
    let state = state::NodeState::open(&config.keys_dir.join("state.redb"))?;
    let institution = concord_stats::Institution {
        organisation_uuids: config.organisation_uuids.clone(),
    };
    let service =
        service::NodeService::new(keys, data.events, institution, config.policy.clone(), state);
    let service = NodeServer::new(service).max_decoding_message_size(MAX_MESSAGE_BYTES);
    tracing::info!(listen = %config.listen, "node serving");
    tonic::transport::Server::builder()
        .tls_config(tls)?
        .add_service(service)
        .serve_with_shutdown(config.listen, shutdown)
        .await?;
    Ok(())
}
