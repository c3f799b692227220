//! What can go wrong while the coordinator drives a query or a setup, typed: a node that cannot
//! be reached, hangs, refuses or answers nonsense; a query that cannot be agreed or completed;
//! the store.

use concord_api::lifecycle::{Phase, TransitionError};
use concord_query::{AgreementError, QueryError};

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("node {node}: cannot connect: {source}")]
    Connect {
        node: String,
        source: tonic::transport::Error,
    },
    #[error("node {node}: {}", describe(status))]
    Node { node: String, status: tonic::Status },
    #[error("node {node}: no reply within {seconds} s")]
    Timeout { node: String, seconds: f64 },
    #[error("node {node} sent an unusable value: {detail}")]
    BadReply { node: String, detail: String },
    #[error("query {query}: {agreed} institutions agreed, {required} required; nothing was computed or decrypted (refusals: {refusals})")]
    TooFewAgreed {
        query: String,
        agreed: usize,
        required: usize,
        refusals: String,
    },
    #[error("query {query}: node {node} refused ({reason}); in all-party mode every key holder must take part")]
    Refused {
        query: String,
        node: String,
        reason: String,
    },
    #[error("invalid query: {0}")]
    InvalidQuery(#[from] AgreementError),
    #[error("invalid query: {enrolled} nodes enrolled; a query needs at least two institutions")]
    TooFewNodes { enrolled: usize },
    #[error("invalid query: the nodes' party numbers are {parties:?}; a deployment numbers its N parties 1..N")]
    Numbering { parties: Vec<u32> },
    #[error("invalid query: threshold {threshold} for {nodes} nodes: {reason}")]
    Threshold {
        threshold: usize,
        nodes: usize,
        reason: String,
    },
    #[error("invalid query: the enrolled nodes changed since the query was proposed to {proposed_to}; it cannot resume")]
    NodesChanged { proposed_to: String },
    #[error("invalid query: {contributed} contributions ({names}); threshold mode needs at least {needed} (T = {threshold}, at least {min_institutions} institutions)")]
    ThresholdQuorum {
        contributed: usize,
        names: String,
        needed: usize,
        threshold: usize,
        min_institutions: usize,
    },
    #[error("invalid query: {contributed} of {nodes} contributions recorded for a query in phase {phase}")]
    Incomplete {
        contributed: usize,
        nodes: usize,
        phase: Phase,
    },
    #[error("invalid query: query {0} vanished from the store")]
    Vanished(String),
    #[error("invalid query: stored state: {0}")]
    Stored(String),
    #[error("invalid query: the released cells: {0}")]
    Decode(QueryError),
    #[error(transparent)]
    Lifecycle(#[from] TransitionError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Mhe(#[from] concord_mhe::MheError),
    #[error(transparent)]
    Bfv(#[from] concord_bfv::BfvError),
}

/// A node's error status in words: what kind, and the node's own message.
fn describe(status: &tonic::Status) -> String {
    let kind = status.code().description().to_lowercase();
    let kind = kind.trim_end_matches('.');
    if status.message().is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {}", status.message())
    }
}

impl CoordinatorError {
    pub(crate) fn bad_reply(node: &str, detail: impl std::fmt::Display) -> Self {
        Self::BadReply {
            node: node.into(),
            detail: detail.to_string(),
        }
    }
}
