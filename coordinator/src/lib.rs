//! The coordinator (DESIGN.md §1, §4): it connects to the institutions' nodes over mutual TLS,
//! runs setup (CRS and collective public key per parameter set), proposes queries, sums the
//! contributions of the nodes that agreed, and gathers decryption shares of the sum.
//!
//! It never holds a key share and never sees a single institution's statistic: it only adds
//! ciphertexts. [`Coordinator`] is the protocol driver; [`service`] serves researchers and
//! [`store`] keeps every query's state in redb (the `concord-coordinator` binary puts them
//! together). Today the aggregate is released by joint decryption (CKS, a result public to the
//! community) in all-party mode: every key holder must agree for a release. Still to come: a
//! query that resumes after a coordinator restart (today it fails cleanly), and — issue 4 — PCKS
//! to the researcher, threshold mode, and contributions verified by the nodes.

pub mod config;
pub mod service;
pub mod store;

use concord_api::tls::{client_config, MAX_MESSAGE_BYTES};
use concord_api::v1::node_client::NodeClient;
use concord_api::v1::{ContributeRequest, DecryptRequest, Proposal, QuerySpec, SetupRequest};
use concord_bfv::{BfvParameters, Ciphertext, PublicKey};
use concord_mhe::{
    CollectiveDecryption, CommonReferenceString, DecryptionShare, PartyId, PublicKeyGen,
    PublicKeyShare, SmudgingPlan,
};
use concord_query::QueryPlan;
use concord_stats::{Template, Window, YearMonth};
use std::collections::HashMap;
use tonic::transport::{Channel, Endpoint};

/// A node the coordinator knows (from its configuration or an enrolment).
#[derive(Clone, Debug)]
pub struct NodeAddress {
    /// The node's certificate name (also the TLS server name).
    pub name: String,
    /// `https://host:port`
    pub url: String,
    /// Its party number (non-zero, distinct).
    pub party: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("node {node}: cannot connect: {source}")]
    Connect {
        node: String,
        source: tonic::transport::Error,
    },
    #[error("node {node}: {status}")]
    Node { node: String, status: tonic::Status },
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
    Query(String),
    #[error(transparent)]
    Mhe(#[from] concord_mhe::MheError),
    #[error(transparent)]
    Bfv(#[from] concord_bfv::BfvError),
}

/// A query's released result and how it came about.
#[derive(Debug, Clone)]
pub struct QueryOutcome {
    pub cells: Vec<u128>,
    pub contributors: Vec<String>,
    pub events_covered: u64,
    pub smudging_lambda: f64,
}

struct Connected {
    address: NodeAddress,
    client: NodeClient<Channel>,
}

/// The coordinator's view of a deployment.
pub struct Coordinator {
    nodes: Vec<Connected>,
    collective_keys: HashMap<&'static str, PublicKey>,
}

impl Coordinator {
    /// Connects to every node with this coordinator's certificate.
    pub async fn connect(
        ca_pem: &str,
        certificate_pem: &str,
        key_pem: &str,
        nodes: &[NodeAddress],
    ) -> Result<Self, CoordinatorError> {
        let mut connected = Vec::new();
        for address in nodes {
            let err = |source| CoordinatorError::Connect {
                node: address.name.clone(),
                source,
            };
            let tls = client_config(ca_pem, certificate_pem, key_pem, &address.name);
            let channel = Endpoint::from_shared(address.url.clone())
                .map_err(err)?
                .tls_config(tls)
                .map_err(err)?
                .connect()
                .await
                .map_err(err)?;
            let client = NodeClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            connected.push(Connected {
                address: address.clone(),
                client,
            });
        }
        Ok(Self {
            nodes: connected,
            collective_keys: HashMap::new(),
        })
    }

    fn parties(&self) -> Vec<PartyId> {
        self.nodes
            .iter()
            .map(|n| PartyId(n.address.party))
            .collect()
    }

    /// CKG across every node for `params`, with a fresh CRS.
    pub async fn setup(
        &mut self,
        params: &std::sync::Arc<BfvParameters>,
    ) -> Result<PublicKey, CoordinatorError> {
        let crs = CommonReferenceString::random();
        let ckg = PublicKeyGen::new(params, &crs);
        let mut aggregate = ckg.aggregator();
        for node in &mut self.nodes {
            let name = node.address.name.clone();
            let reply = node
                .client
                .setup(SetupRequest {
                    parameter_set: params.name().into(),
                    crs_seed: crs.seed().to_vec(),
                    party: node.address.party,
                })
                .await
                .map_err(|status| CoordinatorError::Node {
                    node: name.clone(),
                    status,
                })?
                .into_inner();
            let share = PublicKeyShare::from_bytes(params, &reply.share).map_err(|e| {
                CoordinatorError::BadReply {
                    node: name.clone(),
                    detail: e.to_string(),
                }
            })?;
            if share.party.0 != node.address.party {
                return Err(CoordinatorError::BadReply {
                    node: name,
                    detail: "share for another party".into(),
                });
            }
            aggregate.add(&share)?;
        }
        let key = ckg.finish(aggregate, &self.parties())?;
        self.collective_keys.insert(params.name(), key.clone());
        tracing::info!(
            set = params.name(),
            nodes = self.nodes.len(),
            "collective public key ready"
        );
        Ok(key)
    }

    /// Proposes, collects contributions, sums them and jointly decrypts the sum.
    pub async fn run_query(
        &mut self,
        query_id: &str,
        spec: QuerySpec,
    ) -> Result<QueryOutcome, CoordinatorError> {
        self.run_query_with_progress(query_id, spec, &mut |_| {})
            .await
    }

    /// [`Coordinator::run_query`], reporting each phase as it starts (`proposed`,
    /// `contributing`, `decrypting`) so that it can be made durable.
    pub async fn run_query_with_progress(
        &mut self,
        query_id: &str,
        spec: QuerySpec,
        progress: &mut (dyn FnMut(&'static str) + Send),
    ) -> Result<QueryOutcome, CoordinatorError> {
        let template =
            Template::by_id(&spec.template).map_err(|e| CoordinatorError::Query(e.to_string()))?;
        let first = YearMonth::parse(&spec.window_first).ok_or_else(|| {
            CoordinatorError::Query(format!("window start {:?}", spec.window_first))
        })?;
        let window = Window::new(first, spec.window_months as u16)
            .map_err(|e| CoordinatorError::Query(e.to_string()))?;
        let n = self.nodes.len();
        let plan = QueryPlan::new(template, window, n)
            .map_err(|e| CoordinatorError::Query(e.to_string()))?;
        let params = plan.params.clone();
        let key = match self.collective_keys.get(params.name()) {
            Some(k) => k.clone(),
            None => self.setup(&params).await?,
        };

        // proposal: every node decides by its own policy
        progress("proposed");
        let mut refusals = Vec::new();
        for node in &mut self.nodes {
            let decision = node
                .client
                .propose(Proposal {
                    query_id: query_id.into(),
                    spec: Some(spec.clone()),
                    institutions: n as u32,
                })
                .await
                .map_err(|status| CoordinatorError::Node {
                    node: node.address.name.clone(),
                    status,
                })?
                .into_inner();
            if !decision.agree {
                refusals.push((
                    node.address.name.clone(),
                    format!("{}: {}", decision.reason, decision.detail),
                ));
            }
        }
        let agreed = n - refusals.len();
        if agreed < spec.min_institutions as usize {
            let refusals = refusals
                .iter()
                .map(|(n, r)| format!("{n}: {r}"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(CoordinatorError::TooFewAgreed {
                query: query_id.into(),
                agreed,
                required: spec.min_institutions as usize,
                refusals,
            });
        }
        if let Some((node, reason)) = refusals.into_iter().next() {
            return Err(CoordinatorError::Refused {
                query: query_id.into(),
                node,
                reason,
            });
        }

        // contributions, summed as they arrive
        progress("contributing");
        let mut sum: Vec<Ciphertext> = Vec::new();
        let mut events_covered = 0;
        let key_bytes = key.to_bytes();
        for node in &mut self.nodes {
            let name = node.address.name.clone();
            let reply = node
                .client
                .contribute(ContributeRequest {
                    query_id: query_id.into(),
                    collective_key: key_bytes.clone(),
                    institutions: n as u32,
                })
                .await
                .map_err(|status| CoordinatorError::Node {
                    node: name.clone(),
                    status,
                })?
                .into_inner();
            if reply.ciphertexts.len() != plan.ciphertexts() {
                return Err(CoordinatorError::BadReply {
                    node: name,
                    detail: format!(
                        "{} ciphertexts, {} expected",
                        reply.ciphertexts.len(),
                        plan.ciphertexts()
                    ),
                });
            }
            events_covered += reply.events_covered;
            for (i, bytes) in reply.ciphertexts.iter().enumerate() {
                let ct = Ciphertext::from_bytes(&params, bytes).map_err(|e| {
                    CoordinatorError::BadReply {
                        node: name.clone(),
                        detail: e.to_string(),
                    }
                })?;
                match sum.get_mut(i) {
                    Some(s) => s.add_assign(&ct)?,
                    None => sum.push(ct),
                }
            }
        }

        // joint decryption of the sum
        progress("decrypting");
        let noise = concord_mhe::NoiseEstimate::aggregate(&params, n, n);
        let smudging = SmudgingPlan::for_decryption(&params, noise, n)?;
        let protocols = sum
            .iter()
            .map(|ct| CollectiveDecryption::new(ct, smudging))
            .collect::<Result<Vec<_>, _>>()?;
        let mut aggregates: Vec<_> = protocols.iter().map(|p| p.aggregator()).collect();
        let aggregate_bytes: Vec<Vec<u8>> = sum.iter().map(Ciphertext::to_bytes).collect();
        for node in &mut self.nodes {
            let name = node.address.name.clone();
            let reply = node
                .client
                .decrypt(DecryptRequest {
                    query_id: query_id.into(),
                    ciphertexts: aggregate_bytes.clone(),
                    party: node.address.party,
                    sharing_parties: n as u32,
                    key_parties: n as u32,
                    contributions: n as u32,
                })
                .await
                .map_err(|status| CoordinatorError::Node {
                    node: name.clone(),
                    status,
                })?
                .into_inner();
            if reply.shares.len() != aggregates.len() {
                return Err(CoordinatorError::BadReply {
                    node: name,
                    detail: "wrong number of shares".into(),
                });
            }
            for (agg, bytes) in aggregates.iter_mut().zip(&reply.shares) {
                let share = DecryptionShare::from_bytes(&params, bytes).map_err(|e| {
                    CoordinatorError::BadReply {
                        node: name.clone(),
                        detail: e.to_string(),
                    }
                })?;
                agg.add(&share)?;
            }
        }
        let parties = self.parties();
        let plaintexts = protocols
            .iter()
            .zip(&aggregates)
            .map(|(p, a)| p.decrypt(a, &parties))
            .collect::<Result<Vec<_>, _>>()?;
        let cells = plan
            .decode(&plaintexts)
            .map_err(|e| CoordinatorError::Query(e.to_string()))?;
        Ok(QueryOutcome {
            cells,
            contributors: self.nodes.iter().map(|n| n.address.name.clone()).collect(),
            events_covered,
            smudging_lambda: smudging.lambda,
        })
    }
}
