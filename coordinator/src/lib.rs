//! The coordinator (DESIGN.md §1, §4): it connects to the institutions' nodes over mutual TLS,
//! runs setup (the deployment and its collective public key per parameter set, pinned by every
//! node), proposes queries, gathers the commitments of the nodes that agreed, then — the roster
//! fixed — their contributions, and gathers decryption shares of their sum.
//!
//! It never holds a key share and never sees a single institution's statistic: it only adds
//! ciphertexts. [`Coordinator`] is the protocol driver; every step it takes is first made
//! durable in the [`store`] (phase changes, each acknowledged commitment, each revealed
//! contribution together with the running sum, collective keys), so a query interrupted by a
//! restart resumes where it was ([`Coordinator::run_query`] on an unfinished record): nodes
//! already acknowledged are not asked again, and nodes that already gave decryption shares send
//! the same shares again.
//! [`service`] serves researchers. Nodes are called concurrently, each call bounded by the
//! configured timeout, so a node that hangs or dies never stalls a query: in all-party mode it
//! fails the query with its name; in threshold mode (T of N, [`Deployment::threshold`]) it is
//! left out, and any `T` agreeing contributors release the result.
//!
//! The coordinator chooses nothing a node decrypts: contributions are committed before any is
//! revealed, the roster of commitments is signed by every contributor, and every node that
//! releases receives every contribution, checks it against the roster and sums them itself
//! (`concord-api` `evidence`).
//!
//! A result is released in one of two ways, as the query says and every node agreed: sealed to
//! the researcher's public key (PCKS, the default: the coordinator stores and forwards
//! ciphertexts it cannot read), or public to the community (joint decryption, CKS).
//!
//! What lives where:
//!
//! | module | holds |
//! |---|---|
//! | `pool` | one mTLS channel per node, concurrent calls under the timeout, step reports |
//! | `setup` | the deployment, CKG with signed shares pinned by every node, the threshold setup |
//! | `run` | one query's run: the agreement, the phases in order, the final record |
//! | `propose` | proposal and the nodes' decisions (operators' approvals polled) |
//! | `contribute` | commitments, acknowledged durably as they arrive |
//! | `verify` | the roster fixed, signed and every contribution revealed: what each node checks |
//! | `release` | release shares, gathered by one loop for CKS and PCKS |
//! | `budget` | a researcher's privacy budget, as every node keeps it |
//! | [`store`] | the durable state (redb) |
//! | [`service`] | the researchers' gRPC service; [`config`] the configuration file |
//! | [`operations`] | the operator's views and gauges on the operations endpoint |
//! | `error` | [`CoordinatorError`] |

mod budget;
pub mod config;
mod contribute;
mod error;
pub mod operations;
mod pool;
mod propose;
mod release;
mod run;
pub mod service;
mod setup;
pub mod store;
mod verify;

pub use error::CoordinatorError;
pub use pool::{Step, StepReport};

use concord_api::lifecycle::Phase;
use pool::NodePool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use store::{QueryRecord, QueryStore};

/// How often a proposal waiting for a node operator's approval is asked again.
pub const APPROVAL_POLL: Duration = Duration::from_secs(1);

/// A node the coordinator knows (from its configuration or an enrolment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAddress {
    /// The node's certificate name (also the TLS server name).
    pub name: String,
    /// `https://host:port`
    pub url: String,
    /// Its party number (non-zero, distinct).
    pub party: u32,
}

/// Everything needed to reach the nodes.
#[derive(Clone)]
pub struct Deployment {
    pub ca_pem: String,
    pub certificate_pem: String,
    pub key_pem: zeroize::Zeroizing<String>,
    pub nodes: Vec<NodeAddress>,
    /// The longest the coordinator waits for a node's reply (and for a connection).
    pub timeout: Duration,
    /// Threshold mode: `T`, the fewest nodes whose shares release a result (set up after
    /// CKG); nodes that refuse, die or hang are then left out instead of failing the query.
    /// `None`: all-party mode, every node must take part.
    pub threshold: Option<usize>,
}

/// A query's released result and how it came about.
#[derive(Debug, Clone)]
pub struct QueryOutcome {
    /// A public result's cells (empty for a sealed result).
    pub cells: Vec<i128>,
    /// A sealed result: the aggregate key-switched to the researcher's key (serialized
    /// ciphertexts in slot order), which only they can decrypt.
    pub sealed: Vec<Vec<u8>>,
    pub contributors: Vec<String>,
    /// The nodes whose shares released the result (all of them, or T in threshold mode).
    pub shares_from: Vec<String>,
    pub smudging_lambda: f64,
}

impl QueryOutcome {
    fn of(record: &QueryRecord, sealed: Vec<Vec<u8>>) -> Self {
        debug_assert_eq!(record.phase, Phase::Released);
        Self {
            cells: record.cells.iter().filter_map(|c| c.parse().ok()).collect(),
            sealed,
            contributors: record.contributed.clone(),
            shares_from: record.shares_from.clone(),
            smudging_lambda: record.smudging_lambda,
        }
    }
}

/// The coordinator's view of a deployment.
pub struct Coordinator {
    pool: NodePool,
    /// The deployment's CA: the coordinator checks each node's evidence as it arrives.
    ca_pem: String,
    threshold: Option<usize>,
    store: Arc<QueryStore>,
    /// Per parameter set: the digest of the deployment whose collective key the nodes pinned.
    deployments: HashMap<&'static str, [u8; 32]>,
}

impl Coordinator {
    /// Prepares a channel to every node of the deployment (connected on first use). Call it
    /// within a tokio runtime.
    pub fn connect(
        deployment: &Deployment,
        store: Arc<QueryStore>,
    ) -> Result<Self, CoordinatorError> {
        Ok(Self {
            pool: NodePool::connect(deployment)?,
            ca_pem: deployment.ca_pem.clone(),
            threshold: deployment.threshold,
            store,
            deployments: HashMap::new(),
        })
    }

    /// Calls `observer` at the end of every step (setup, proposal, contribution,
    /// verification, decryption) with its wall time and traffic.
    pub fn observe(&mut self, observer: impl FnMut(&StepReport) + Send + Sync + 'static) {
        self.pool.observe(observer);
    }
}
