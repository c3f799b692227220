//! The coordinator's configuration file (TOML). Every key, with its default, is in
//! `docs/configuration.md` (checked against this code by `concord-testbed`'s tests). Example:
//!
//! ```toml
//! listen = "127.0.0.1:7400"
//! state = "/var/lib/concord/coordinator.redb"
//! node_timeout_s = 60             # the longest a node may take to reply (default 60)
//! threshold = 3                   # optional: threshold mode, any 3 nodes release a result
//!                                 # (set up after CKG); absent: every node must take part
//! max_queries_in_flight_per_researcher = 16  # more from one researcher wait their turn: refused
//!                                 # until one of theirs ends (default 16)
//!
//! [tls]
//! ca = "ca.pem"
//! certificate = "coordinator.pem"
//! key = "coordinator.key"
//!
//! # nodes known in advance (optional: nodes with a certificate of the CA may also enrol by
//! # RPC, `concord-node` does when its configuration names the coordinator)
//! [[nodes]]
//! name = "node-1"                 # the node certificate's name (TLS server name)
//! url = "https://127.0.0.1:7401"
//! party = 1
//!
//! # optional: the operator's HTTP endpoint (no authentication: loopback or a monitoring
//! # network only): /metrics (Prometheus), /ready, /queries and /nodes
//! # (`concord-coordinator queries|nodes`)
//! [operations]
//! listen = "127.0.0.1:9400"
//! ```

pub use concord_api::tls::TlsFiles;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub state: PathBuf,
    #[serde(default = "default_node_timeout")]
    pub node_timeout_s: f64,
    pub tls: TlsFiles,
    /// Threshold mode (T of N): any `threshold` nodes release a result, and nodes that refuse,
    /// die or hang are left out of a query. Absent: all-party mode.
    pub threshold: Option<usize>,
    /// Nodes known in advance; others enrol by RPC (`Coordinator.Enrol`).
    #[serde(default)]
    pub nodes: Vec<NodeEntry>,
    /// The most queries one researcher may have in flight (submitted, not yet released or
    /// failed); another is refused until one ends (default 16).
    #[serde(default = "default_max_in_flight")]
    pub max_queries_in_flight_per_researcher: usize,
    /// The operator's HTTP endpoint: Prometheus metrics, readiness, `/queries` and `/nodes`
    /// (`concord-api` `operations`); absent: none.
    pub operations: Option<concord_api::operations::OperationsConfig>,
}

fn default_max_in_flight() -> usize {
    16
}

fn default_node_timeout() -> f64 {
    60.0
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    pub name: String,
    pub url: String,
    pub party: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: PathBuf,
    pub message: String,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError {
            path: path.into(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        let mut config: Config = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let mut parties: Vec<u32> = config.nodes.iter().map(|n| n.party).collect();
        parties.sort();
        parties.dedup();
        if parties.len() != config.nodes.len() || parties.contains(&0) {
            return Err(invalid(
                "node party numbers must be distinct and non-zero".into(),
            ));
        }
        if config.threshold.is_some_and(|t| t < 2) {
            return Err(invalid(
                "threshold must be at least 2: one node alone must never release a result".into(),
            ));
        }
        if config.max_queries_in_flight_per_researcher == 0 {
            return Err(invalid(
                "max_queries_in_flight_per_researcher must be at least 1".into(),
            ));
        }
        if !(config.node_timeout_s > 0.0 && config.node_timeout_s <= 86_400.0) {
            return Err(invalid(
                "node_timeout_s must be more than 0 and at most 86400 seconds".into(),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        config.tls.resolve(base);
        if config.state.is_relative() {
            config.state = base.join(&config.state);
        }
        Ok(config)
    }
}
