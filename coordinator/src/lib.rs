//! The coordinator (DESIGN.md §1, §4): it connects to the institutions' nodes over mutual TLS,
//! runs setup (CRS and collective public key per parameter set), proposes queries, sums the
//! contributions of the nodes that agreed as they arrive, and gathers decryption shares of the
//! sum.
//!
//! It never holds a key share and never sees a single institution's statistic: it only adds
//! ciphertexts. [`Coordinator`] is the protocol driver; every step it takes is first made
//! durable in the [`store`] (phase changes, each acknowledged contribution together with the
//! running sum, collective keys), so a query interrupted by a restart resumes where it was
//! ([`Coordinator::run_query`] on an unfinished record): nodes already summed are not asked
//! again, and nodes that already gave decryption shares send the same shares again.
//! [`service`] serves researchers. Nodes are called concurrently, each call bounded by the
//! configured timeout, so a node that hangs or dies never stalls a query: in all-party mode it
//! fails the query with its name; in threshold mode (T of N, [`Deployment::threshold`]) it is
//! left out, and any `T` agreeing contributors release the result.
//!
//! Before any node decrypts, the coordinator gathers the evidence that the aggregate is what it
//! claims (each contribution's signed commitment, then every contributor's signed fingerprint
//! at the challenge the aggregate fixes: `concord-api` `evidence`); each node checks it itself.
//!
//! A result is released in one of two ways, as the query says and every node agreed: sealed to
//! the researcher's public key (PCKS, the default: the coordinator stores and forwards
//! ciphertexts it cannot read), or public to the community (joint decryption, CKS).

pub mod config;
pub mod service;
pub mod store;

use concord_api::chunks::{collect, stream};
use concord_api::evidence;
use concord_api::tls::{client_config, MAX_MESSAGE_BYTES};
use concord_api::v1::node_client::NodeClient;
use concord_api::v1::{
    CombineRequest, Commitment, ContributeRequest, Contribution, DecryptRequest,
    ExchangeKeyRequest, FingerprintRequest, Proposal, QuerySpec, ReshareRequest, SealedSecret,
    SetupRequest, SignedFingerprint, ThresholdParty, ThresholdSetup,
};
use concord_bfv::{BfvParameters, Ciphertext, PublicKey};
use concord_mhe::fingerprint;
use concord_mhe::{
    CollectiveDecryption, CommonReferenceString, DecryptionShare, KeySwitchShare, PartyId,
    PublicKeyGen, PublicKeyShare, PublicKeySwitch, SmudgingPlan,
};
use concord_query::QueryPlan;
use concord_stats::{Template, Window, YearMonth};
use prost::Message;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{QueryRecord, QueryStore, StoredKey};
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};

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
    Query(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
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
    fn bad_reply(node: &str, detail: impl std::fmt::Display) -> Self {
        Self::BadReply {
            node: node.into(),
            detail: detail.to_string(),
        }
    }
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
    pub events_covered: u64,
    pub smudging_lambda: f64,
}

impl QueryOutcome {
    fn of(record: &QueryRecord, sealed: Vec<Vec<u8>>) -> Self {
        Self {
            cells: record.cells.iter().filter_map(|c| c.parse().ok()).collect(),
            sealed,
            contributors: record.contributed.clone(),
            shares_from: record.shares_from.clone(),
            events_covered: record.events_covered,
            smudging_lambda: record.smudging_lambda,
        }
    }
}

#[derive(Clone)]
struct Connected {
    address: NodeAddress,
    client: NodeClient<Channel>,
}

/// What one phase of a query (or a setup) took: wall time at the coordinator, and the
/// gRPC message bytes it sent to and received from the nodes (protobuf-encoded; TLS and
/// HTTP/2 framing add a little).
#[derive(Clone, Debug)]
pub struct PhaseReport {
    /// The query id, or the parameter set for a setup.
    pub query: String,
    /// setup, proposal, contribution or decryption
    pub phase: &'static str,
    pub wall: Duration,
    pub sent: u64,
    pub received: u64,
}

/// Message bytes moved since the last phase ended.
#[derive(Default)]
struct Traffic {
    sent: AtomicU64,
    received: AtomicU64,
}

impl Traffic {
    fn count_sent(&self, bytes: usize) {
        self.sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }
    fn count_received(&self, bytes: usize) {
        self.received.fetch_add(bytes as u64, Ordering::Relaxed);
    }
    fn take(&self) -> (u64, u64) {
        (
            self.sent.swap(0, Ordering::Relaxed),
            self.received.swap(0, Ordering::Relaxed),
        )
    }
}

type Observer = Box<dyn FnMut(&PhaseReport) + Send + Sync>;

/// The coordinator's view of a deployment.
pub struct Coordinator {
    nodes: Vec<Connected>,
    /// The deployment's CA: the coordinator checks each node's commitment as it arrives.
    ca_pem: String,
    threshold: Option<usize>,
    timeout: Duration,
    store: Arc<QueryStore>,
    /// Per parameter set: the collective key and the CRS seed it was made with.
    collective_keys: HashMap<&'static str, (PublicKey, Vec<u8>)>,
    traffic: Arc<Traffic>,
    observer: Option<Observer>,
}

impl Coordinator {
    /// Prepares a channel to every node with this coordinator's certificate. Channels connect
    /// on first use (and again after a failure), so a node that is down or hangs costs only
    /// the calls made to it, each bounded by the timeout. Call it within a tokio runtime.
    pub fn connect(
        deployment: &Deployment,
        store: Arc<QueryStore>,
    ) -> Result<Self, CoordinatorError> {
        let mut connected = Vec::new();
        for address in &deployment.nodes {
            let err = |source| CoordinatorError::Connect {
                node: address.name.clone(),
                source,
            };
            let tls = client_config(
                &deployment.ca_pem,
                &deployment.certificate_pem,
                &deployment.key_pem,
                &address.name,
            );
            let channel = Endpoint::from_shared(address.url.clone())
                .map_err(err)?
                .tls_config(tls)
                .map_err(err)?
                .connect_timeout(deployment.timeout)
                .connect_lazy();
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
            ca_pem: deployment.ca_pem.clone(),
            threshold: deployment.threshold,
            timeout: deployment.timeout,
            store,
            collective_keys: HashMap::new(),
            traffic: Arc::default(),
            observer: None,
        })
    }

    fn parties(&self) -> Vec<PartyId> {
        self.nodes
            .iter()
            .map(|n| PartyId(n.address.party))
            .collect()
    }

    fn stored_parties(&self) -> Vec<(String, u32)> {
        self.nodes
            .iter()
            .map(|n| (n.address.name.clone(), n.address.party))
            .collect()
    }

    /// Calls the nodes `which` concurrently — `request` makes each node's request, `call`
    /// sends it — each call bounded by the timeout; replies are handed back as they arrive,
    /// with the node's index. Bytes both ways are counted for the phase report.
    fn call_each<Req, T, F, Fut>(
        &self,
        which: impl IntoIterator<Item = usize>,
        request: impl Fn(&NodeAddress) -> Req,
        call: F,
    ) -> JoinSet<(usize, Result<T, CoordinatorError>)>
    where
        Req: prost::Message,
        T: prost::Message + 'static,
        F: Fn(NodeClient<Channel>, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send + 'static,
    {
        let mut set = JoinSet::new();
        for i in which {
            let node = &self.nodes[i];
            let request = request(&node.address);
            self.traffic.count_sent(request.encoded_len());
            let reply = call(node.client.clone(), request);
            let (name, timeout, traffic) = (
                node.address.name.clone(),
                self.timeout,
                self.traffic.clone(),
            );
            set.spawn(async move {
                let result = match tokio::time::timeout(timeout, reply).await {
                    Ok(Ok(reply)) => {
                        let reply = reply.into_inner();
                        traffic.count_received(reply.encoded_len());
                        Ok(reply)
                    }
                    Ok(Err(status)) => Err(CoordinatorError::Node { node: name, status }),
                    Err(_) => Err(CoordinatorError::Timeout {
                        node: name,
                        seconds: timeout.as_secs_f64(),
                    }),
                };
                (i, result)
            });
        }
        set
    }

    /// Ends a phase: logs and reports its wall time and the bytes it moved.
    fn phase_done(&mut self, query: &str, phase: &'static str, started: Instant) {
        let (sent, received) = self.traffic.take();
        let report = PhaseReport {
            query: query.to_owned(),
            phase,
            wall: started.elapsed(),
            sent,
            received,
        };
        tracing::info!(
            query,
            phase,
            ms = report.wall.as_secs_f64() * 1e3,
            sent,
            received,
            "phase done"
        );
        if let Some(observer) = &mut self.observer {
            observer(&report);
        }
    }

    /// Calls `observer` at the end of every phase (setup, proposal, contribution, decryption).
    pub fn observe(&mut self, observer: impl FnMut(&PhaseReport) + Send + Sync + 'static) {
        self.observer = Some(Box::new(observer));
    }

    /// Waits for the next reply of a [`Coordinator::call_each`].
    async fn next<T: 'static>(
        set: &mut JoinSet<(usize, Result<T, CoordinatorError>)>,
    ) -> Option<(usize, Result<T, CoordinatorError>)> {
        set.join_next()
            .await
            .map(|joined| joined.expect("node calls do not panic"))
    }

    /// The collective public key for `params`: the stored one if it was made for exactly these
    /// nodes, otherwise a fresh CKG across every node.
    /// (with the seed of its CRS, which names the setup threshold shares belong to).
    async fn collective_key(
        &mut self,
        params: &Arc<BfvParameters>,
    ) -> Result<(PublicKey, Vec<u8>), CoordinatorError> {
        if let Some(key) = self.collective_keys.get(params.name()) {
            return Ok(key.clone());
        }
        if let Some(stored) = self.store.collective_key(params.name())? {
            if stored.parties == self.stored_parties()
                && stored.threshold == self.threshold.unwrap_or(0)
            {
                if let Ok(key) = PublicKey::from_bytes(params, &stored.key) {
                    let key = (key, stored.crs_seed);
                    self.collective_keys.insert(params.name(), key.clone());
                    return Ok(key);
                }
            }
        }
        self.setup(params).await?;
        Ok(self.collective_keys[params.name()].clone())
    }

    /// CKG across every node for `params`, with a fresh CRS; the key is stored.
    pub async fn setup(
        &mut self,
        params: &Arc<BfvParameters>,
    ) -> Result<PublicKey, CoordinatorError> {
        let crs = CommonReferenceString::random();
        let ckg = PublicKeyGen::new(params, &crs);
        let mut aggregate = ckg.aggregator();
        let started = Instant::now();
        let mut calls = self.call_each(
            0..self.nodes.len(),
            |address| SetupRequest {
                parameter_set: params.name().into(),
                crs_seed: crs.seed().to_vec(),
                party: address.party,
            },
            |mut client, request| async move { client.setup(request).await },
        );
        while let Some((i, reply)) = Self::next(&mut calls).await {
            let address = &self.nodes[i].address;
            let share = PublicKeyShare::from_bytes(params, &reply?.share)
                .map_err(|e| CoordinatorError::bad_reply(&address.name, e))?;
            if share.party.0 != address.party {
                return Err(CoordinatorError::bad_reply(
                    &address.name,
                    "share for another party",
                ));
            }
            aggregate.add(&share)?;
        }
        let key = ckg.finish(aggregate, &self.parties())?;
        if let Some(threshold) = self.threshold {
            self.threshold_setup(params, &crs, threshold).await?;
        }
        self.store.put_collective_key(
            params.name(),
            &StoredKey {
                parties: self.stored_parties(),
                key: key.to_bytes(),
                threshold: self.threshold.unwrap_or(0),
                crs_seed: crs.seed().to_vec(),
            },
        )?;
        self.collective_keys
            .insert(params.name(), (key.clone(), crs.seed().to_vec()));
        tracing::info!(
            set = params.name(),
            nodes = self.nodes.len(),
            "collective public key ready"
        );
        self.phase_done(params.name(), "setup", started);
        Ok(key)
    }

    /// Threshold setup (T of N) after CKG, relayed between the nodes: every node's exchange
    /// key, then every node's resharings (each sealed to its recipient, unreadable here),
    /// then to each node the resharings sealed to it, from which it keeps its threshold share.
    async fn threshold_setup(
        &mut self,
        params: &Arc<BfvParameters>,
        crs: &CommonReferenceString,
        threshold: usize,
    ) -> Result<(), CoordinatorError> {
        let n = self.nodes.len();
        if threshold < 2 || threshold > n {
            return Err(CoordinatorError::Query(format!(
                "threshold {threshold} for {n} nodes: T must be at least 2 and at most N"
            )));
        }
        let mut calls = self.call_each(
            0..n,
            |_| ExchangeKeyRequest {},
            |mut client, request| async move { client.exchange_key_of(request).await },
        );
        let mut parties = Vec::new();
        while let Some((i, reply)) = Self::next(&mut calls).await {
            let address = &self.nodes[i].address;
            let key = reply?;
            let who = concord_api::exchange::verify_exchange_key(&self.ca_pem, &key)
                .map_err(|e| CoordinatorError::bad_reply(&address.name, e))?;
            if who.name != address.name {
                return Err(CoordinatorError::bad_reply(
                    &address.name,
                    format!("an exchange key signed by {}", who.name),
                ));
            }
            parties.push(ThresholdParty {
                party: address.party,
                key: Some(key),
            });
        }
        parties.sort_by_key(|p| p.party);
        let setup = ThresholdSetup {
            parameter_set: params.name().into(),
            crs_seed: crs.seed().to_vec(),
            threshold: threshold as u32,
            parties,
        };
        let mut calls = self.call_each(
            0..n,
            |_| ReshareRequest {
                setup: Some(setup.clone()),
            },
            |mut client, request| async move {
                let parts = client.reshare(request).await?.into_inner();
                Ok(tonic::Response::new(collect(parts, |_| Ok(n)).await?))
            },
        );
        let mut to: HashMap<u32, Vec<SealedSecret>> = HashMap::new();
        while let Some((i, reply)) = Self::next(&mut calls).await {
            let address = &self.nodes[i].address;
            let reply = reply?;
            if reply.sealed.len() != n || reply.sealed.iter().any(|s| s.from != address.party) {
                return Err(CoordinatorError::bad_reply(
                    &address.name,
                    "not one resharing from it to every party",
                ));
            }
            for sealed in reply.sealed {
                to.entry(sealed.to).or_default().push(sealed);
            }
        }
        let mut calls = self.call_each(
            0..n,
            |address| CombineRequest {
                setup: Some(setup.clone()),
                sealed: to.get(&address.party).cloned().unwrap_or_default(),
            },
            |mut client, request| async move { client.combine(stream(request)).await },
        );
        while let Some((_, reply)) = Self::next(&mut calls).await {
            reply?;
        }
        tracing::info!(
            set = params.name(),
            threshold,
            nodes = n,
            "threshold key shares in place"
        );
        Ok(())
    }

    /// Runs a new query (recorded in the store under `query_id`) to its end, for the
    /// researcher whose certificate (DER) is given — nodes check the query's signature with it.
    pub async fn run_query(
        &mut self,
        query_id: &str,
        spec: QuerySpec,
        researcher_certificate: &[u8],
    ) -> Result<QueryOutcome, CoordinatorError> {
        let record = match self.store.get(query_id)? {
            Some(record) => record,
            None => {
                let key = spec.recipient_key.clone();
                let researcher = concord_api::pki::identity_of(researcher_certificate)
                    .map(|id| id.name)
                    .unwrap_or_default();
                let record = QueryRecord::submitted(
                    query_id.into(),
                    researcher,
                    researcher_certificate.to_vec(),
                    spec,
                );
                self.store.submit(&record, &key)?;
                record
            }
        };
        self.run(record).await
    }

    /// Drives a stored query from its recorded phase to its end, and records the end: the
    /// result (`released`, final: a released query is never decrypted again) or the failure.
    pub async fn run(&mut self, record: QueryRecord) -> Result<QueryOutcome, CoordinatorError> {
        if record.phase == "released" {
            let sealed = self.store.sealed_result(&record.id)?;
            return Ok(QueryOutcome::of(&record, sealed));
        }
        let id = record.id.clone();
        let result = self.drive(record).await;
        let mut record = self.store.get(&id)?.ok_or_else(|| {
            CoordinatorError::Query(format!("query {id} vanished from the store"))
        })?;
        match &result {
            Ok(outcome) => {
                record.phase = "released".into();
                record.detail.clear();
                record.cells = outcome.cells.iter().map(i128::to_string).collect();
                record.institutions = outcome.contributors.len() as u32;
                record.shares_from = outcome.shares_from.clone();
                record.smudging_lambda = outcome.smudging_lambda;
            }
            Err(e) => {
                record.phase = "failed".into();
                record.detail = e.to_string();
            }
        }
        let sealed = result.as_ref().map_or(&[][..], |o| &o.sealed[..]);
        self.store.finish(&record, sealed)?;
        tracing::info!(query = %record.id, phase = %record.phase, detail = %record.detail, "query finished");
        result
    }

    async fn drive(&mut self, mut record: QueryRecord) -> Result<QueryOutcome, CoordinatorError> {
        let query_id = record.id.clone();
        let mut spec = record.spec();
        if record.sealed {
            spec.recipient_key = self.store.recipient_key(&query_id)?;
        }
        let template =
            Template::by_id(&spec.template).map_err(|e| CoordinatorError::Query(e.to_string()))?;
        let first = YearMonth::parse(&spec.window_first).ok_or_else(|| {
            CoordinatorError::Query(format!("window start {:?}", spec.window_first))
        })?;
        let window = Window::new(first, spec.window_months.min(u16::MAX as u32) as u16)
            .map_err(|e| CoordinatorError::Query(e.to_string()))?;
        let n = self.nodes.len();
        if n < 2 {
            return Err(CoordinatorError::Query(format!(
                "{n} nodes enrolled; a query needs at least two institutions"
            )));
        }
        let mut plan = QueryPlan::new(template, window, n)
            .map_err(|e| CoordinatorError::Query(e.to_string()))?;
        if spec.epsilon > 0.0 {
            plan = plan
                .with_dp(spec.epsilon, spec.delta, spec.min_institutions as usize)
                .map_err(|e| CoordinatorError::Query(e.to_string()))?;
        }
        let params = plan.params.clone();
        let (key, crs_seed) = self.collective_key(&params).await?;

        if record.phase == "submitted" || record.phase == "proposed" {
            let started = Instant::now();
            record.phase = "proposed".into();
            record.asked = n as u32;
            record.parties = self.stored_parties();
            self.store.put(&record)?;
            record.agreed = self.propose(&query_id, &spec, &record).await?;
            self.phase_done(&query_id, "proposal", started);
            record.phase = "contributing".into();
            self.store.put(&record)?;
        }

        if record.parties != self.stored_parties() {
            return Err(CoordinatorError::Query(format!(
                "the enrolled nodes changed since the query was proposed to {}; it cannot resume",
                record
                    .parties
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }

        // contributions, summed as they arrive; each one acknowledged durably with the sum
        let mut sum: Vec<Ciphertext> = self
            .store
            .partial_sum(&query_id)?
            .unwrap_or_default()
            .iter()
            .map(|bytes| Ciphertext::from_bytes(&params, bytes))
            .collect::<Result<_, _>>()?;
        let binding = evidence::QueryBinding::new(&query_id, &spec);
        let mut commitments = self.store.commitments(&query_id)?;
        if record.phase == "contributing" {
            let started = Instant::now();
            let agreed = |name: &String| record.agreed.is_empty() || record.agreed.contains(name);
            let missing: Vec<usize> = (0..n)
                .filter(|&i| {
                    let name = &self.nodes[i].address.name;
                    agreed(name) && !record.contributed.contains(name)
                })
                .collect();
            if !record.contributed.is_empty() {
                tracing::info!(query = %query_id, summed = record.contributed.len(), asking = missing.len(), "resuming contributions");
            }
            let key_bytes = key.to_bytes();
            let ciphertexts = plan.ciphertexts();
            let mut calls = self.call_each(
                missing,
                |_| ContributeRequest {
                    query_id: query_id.clone(),
                    collective_key: key_bytes.clone(),
                    institutions: n as u32,
                },
                |mut client, request| async move {
                    let parts = client.contribute(request).await?.into_inner();
                    let whole = collect(parts, |_| Ok(ciphertexts)).await?;
                    Ok(tonic::Response::new(whole))
                },
            );
            while let Some((i, reply)) = Self::next(&mut calls).await {
                let name = &self.nodes[i].address.name;
                let reply = match (reply, self.threshold) {
                    (Ok(reply), _) => reply,
                    (Err(e), None) => return Err(e),
                    // threshold mode: a node that fails now is left out
                    (Err(e), Some(_)) => {
                        tracing::warn!(query = %query_id, "left out: {e}");
                        continue;
                    }
                };
                let commitment = self.check_commitment(name, &binding, &reply)?;
                if reply.ciphertexts.len() != plan.ciphertexts() {
                    return Err(CoordinatorError::bad_reply(
                        name,
                        format!(
                            "{} ciphertexts, {} expected",
                            reply.ciphertexts.len(),
                            plan.ciphertexts()
                        ),
                    ));
                }
                let cts = reply
                    .ciphertexts
                    .iter()
                    .map(|bytes| Ciphertext::from_bytes(&params, bytes))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| CoordinatorError::bad_reply(name, e))?;
                if sum.is_empty() {
                    sum = cts;
                } else {
                    for (s, ct) in sum.iter_mut().zip(&cts) {
                        s.add_assign(ct)?;
                    }
                }
                record.contributed.push(name.clone());
                record.events_covered += reply.events_covered;
                commitments.push(commitment.encode_to_vec());
                let sum_bytes: Vec<Vec<u8>> = sum.iter().map(Ciphertext::to_bytes).collect();
                self.store.acknowledge(&record, &sum_bytes, &commitments)?;
            }
            record.phase = "verifying".into();
            self.store.put(&record)?;
            self.phase_done(&query_id, "contribution", started);
        }
        let contributors = record.contributed.len();
        let needed = match self.threshold {
            None => n,
            Some(t) => t.max(spec.min_institutions as usize),
        };
        if contributors < needed
            || commitments.len() != contributors
            || sum.len() != plan.ciphertexts()
        {
            return Err(CoordinatorError::Query(match self.threshold {
                Some(t) => format!(
                    "{contributors} contributions ({}); threshold mode needs at least {needed} (T = {t}, at least {} institutions)",
                    record.contributed.join(", "),
                    spec.min_institutions
                ),
                None => format!(
                    "{contributors} of {n} contributions recorded for a query in phase {}",
                    record.phase
                ),
            }));
        }
        let commitments = commitments
            .iter()
            .map(|bytes| Commitment::decode(bytes.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CoordinatorError::Query(format!("stored commitments: {e}")))?;

        // aggregate verification, round two: every contributor's signed fingerprint at the
        // challenge that the aggregate and the commitments fix
        let started = Instant::now();
        let aggregate_bytes: Vec<Vec<u8>> = sum.iter().map(Ciphertext::to_bytes).collect();
        let fingerprints = self
            .fingerprints(&binding, &record, &sum, &aggregate_bytes, &commitments)
            .await?;
        if record.phase == "verifying" {
            record.phase = "decrypting".into();
            self.store.put(&record)?;
        }
        self.phase_done(&query_id, "verification", started);

        // shares of the sum from every node: a key switch to the researcher's key (PCKS), or
        // a joint decryption for a public result (CKS)
        let started = Instant::now();
        let recipient = match record.sealed {
            true => Some(
                PublicKey::from_bytes(&params, &spec.recipient_key)
                    .map_err(|e| CoordinatorError::Query(format!("recipient key: {e}")))?,
            ),
            false => None,
        };
        // the nodes giving shares: all (all-party mode), or the T contributors with the lowest
        // party numbers (threshold mode; each weights its share for exactly that set)
        let mut active: Vec<usize> = (0..n)
            .filter(|&i| {
                self.threshold.is_none() || record.contributed.contains(&self.nodes[i].address.name)
            })
            .collect();
        active.sort_by_key(|&i| self.nodes[i].address.party);
        active.truncate(self.threshold.unwrap_or(n));
        let active_parties: Vec<u32> = match self.threshold {
            Some(_) => active
                .iter()
                .map(|&i| self.nodes[i].address.party)
                .collect(),
            None => Vec::new(),
        };
        let sharing = active.len();
        let noise = concord_mhe::NoiseEstimate::aggregate(&params, n, contributors);
        let smudging = match recipient {
            Some(_) => SmudgingPlan::for_key_switch(&params, noise, sharing)?,
            None => SmudgingPlan::for_decryption(&params, noise, sharing)?,
        };
        let ciphertexts = sum.len();
        let mut calls = self.call_each(
            active.clone(),
            |address| DecryptRequest {
                query_id: query_id.clone(),
                ciphertexts: aggregate_bytes.clone(),
                party: address.party,
                sharing_parties: sharing as u32,
                key_parties: n as u32,
                commitments: commitments.clone(),
                fingerprints: fingerprints.clone(),
                active_parties: active_parties.clone(),
                crs_seed: match self.threshold {
                    Some(_) => crs_seed.clone(),
                    None => Vec::new(),
                },
            },
            |mut client, request| async move {
                let parts = client.decrypt(stream(request)).await?.into_inner();
                let whole = collect(parts, |_| Ok(ciphertexts)).await?;
                Ok(tonic::Response::new(whole))
            },
        );
        let mut shares = Vec::new();
        while let Some((i, reply)) = Self::next(&mut calls).await {
            let reply = reply?;
            if reply.shares.len() != ciphertexts {
                return Err(CoordinatorError::bad_reply(
                    &self.nodes[i].address.name,
                    "wrong number of shares",
                ));
            }
            shares.push((self.nodes[i].address.name.clone(), reply.shares));
        }
        let parties: Vec<PartyId> = active
            .iter()
            .map(|&i| PartyId(self.nodes[i].address.party))
            .collect();
        let mut shares_from: Vec<String> = active
            .iter()
            .map(|&i| self.nodes[i].address.name.clone())
            .collect();
        shares_from.sort();
        let (cells, sealed) = match &recipient {
            Some(recipient) => {
                let protocols = sum
                    .iter()
                    .map(|ct| PublicKeySwitch::new(ct, recipient, smudging))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut aggregates: Vec<_> = protocols.iter().map(|p| p.aggregator()).collect();
                for (name, node_shares) in &shares {
                    for (agg, bytes) in aggregates.iter_mut().zip(node_shares) {
                        let share = KeySwitchShare::from_bytes(&params, bytes)
                            .map_err(|e| CoordinatorError::bad_reply(name, e))?;
                        agg.add(&share)?;
                    }
                }
                let sealed = protocols
                    .iter()
                    .zip(&aggregates)
                    .map(|(p, a)| p.finish(a, &parties).map(|ct| ct.to_bytes()))
                    .collect::<Result<Vec<_>, _>>()?;
                (Vec::new(), sealed)
            }
            None => {
                let protocols = sum
                    .iter()
                    .map(|ct| CollectiveDecryption::new(ct, smudging))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut aggregates: Vec<_> = protocols.iter().map(|p| p.aggregator()).collect();
                for (name, node_shares) in &shares {
                    for (agg, bytes) in aggregates.iter_mut().zip(node_shares) {
                        let share = DecryptionShare::from_bytes(&params, bytes)
                            .map_err(|e| CoordinatorError::bad_reply(name, e))?;
                        agg.add(&share)?;
                    }
                }
                let plaintexts = protocols
                    .iter()
                    .zip(&aggregates)
                    .map(|(p, a)| p.decrypt(a, &parties))
                    .collect::<Result<Vec<_>, _>>()?;
                let cells = plan
                    .decode(&plaintexts)
                    .map_err(|e| CoordinatorError::Query(e.to_string()))?;
                (cells, Vec::new())
            }
        };
        self.phase_done(&query_id, "decryption", started);
        Ok(QueryOutcome {
            cells,
            sealed,
            shares_from,
            contributors: record.contributed,
            events_covered: record.events_covered,
            smudging_lambda: smudging.lambda,
        })
    }

    /// Checks a node's commitment to the contribution it sent: signed by that node's
    /// certificate for this query, over exactly these ciphertexts.
    fn check_commitment(
        &self,
        name: &str,
        binding: &evidence::QueryBinding,
        reply: &Contribution,
    ) -> Result<Commitment, CoordinatorError> {
        let commitment = reply.commitment.clone().ok_or_else(|| {
            CoordinatorError::bad_reply(name, "a contribution without commitment")
        })?;
        let signer = binding
            .verify_commitment(&self.ca_pem, &commitment)
            .map_err(|e| CoordinatorError::bad_reply(name, format!("commitment: {e}")))?;
        if signer.name != name {
            return Err(CoordinatorError::bad_reply(
                name,
                format!("a commitment signed by {}", signer.name),
            ));
        }
        if commitment.digest != evidence::digest(&reply.ciphertexts) {
            return Err(CoordinatorError::bad_reply(
                name,
                "the commitment is not to the ciphertexts sent",
            ));
        }
        Ok(commitment)
    }

    /// Asks every contributor for its signed fingerprint at the challenge fixed by the
    /// aggregate and the commitments, in the commitments' order, and checks them against the
    /// aggregate as every node will (so a node that signs a wrong value is caught here).
    async fn fingerprints(
        &self,
        binding: &evidence::QueryBinding,
        record: &QueryRecord,
        sum: &[Ciphertext],
        aggregate_bytes: &[Vec<u8>],
        commitments: &[Commitment],
    ) -> Result<Vec<SignedFingerprint>, CoordinatorError> {
        let aggregate_digest = evidence::digest(aggregate_bytes);
        let request = FingerprintRequest {
            query_id: binding.query_id().into(),
            aggregate_digest: aggregate_digest.to_vec(),
            commitments: commitments.to_vec(),
        };
        let position = |name: &str| record.contributed.iter().position(|c| c == name);
        let contributors: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| position(&self.nodes[i].address.name).is_some())
            .collect();
        let mut calls = self.call_each(
            contributors,
            |_| request.clone(),
            |mut client, request| async move { client.fingerprint(request).await },
        );
        let mut fingerprints = vec![SignedFingerprint::default(); commitments.len()];
        let seed = binding.challenge_seed(&aggregate_digest, commitments);
        while let Some((i, reply)) = Self::next(&mut calls).await {
            let name = &self.nodes[i].address.name;
            let at = position(name).expect("asked contributors only");
            let reply = reply?;
            binding
                .verify_fingerprint(&self.ca_pem, &seed, &commitments[at], &reply)
                .map_err(|e| CoordinatorError::bad_reply(name, format!("fingerprint: {e}")))?;
            fingerprints[at] = reply;
        }
        let values: Vec<&[u64]> = fingerprints.iter().map(|f| f.values.as_slice()).collect();
        fingerprint::check(sum, &seed, &values)?;
        Ok(fingerprints)
    }

    /// Proposes the query to every node; returns the nodes that agreed. In all-party mode all
    /// must agree; in threshold mode a node that refuses, fails or does not answer is left out,
    /// as long as enough agree (the query's minimum, and T). A node whose operator approves
    /// queries by hand answers "pending": it is asked again every [`APPROVAL_POLL`] (the
    /// query's detail says whom it waits for) until it decides — its own
    /// `approval_timeout_s` bounds the wait — unless the query cannot go on anyway.
    async fn propose(
        &self,
        query_id: &str,
        spec: &QuerySpec,
        record: &QueryRecord,
    ) -> Result<Vec<String>, CoordinatorError> {
        let n = self.nodes.len();
        let proposal = Proposal {
            query_id: query_id.into(),
            spec: Some(spec.clone()),
            institutions: n as u32,
            researcher: record.researcher.clone(),
            researcher_certificate: record.researcher_certificate.clone(),
        };
        let mut asking: Vec<usize> = (0..n).collect();
        let mut agreed = Vec::new();
        let mut refusals = Vec::new();
        loop {
            let mut calls = self.call_each(
                asking,
                |_| proposal.clone(),
                |mut client, request| async move { client.propose(request).await },
            );
            let mut pending = Vec::new();
            while let Some((i, decision)) = Self::next(&mut calls).await {
                let name = self.nodes[i].address.name.clone();
                match (decision, self.threshold) {
                    (Ok(d), _) if d.pending => pending.push(i),
                    (Ok(d), _) if d.agree => agreed.push(name),
                    (Ok(d), _) => refusals.push((name, format!("{}: {}", d.reason, d.detail))),
                    (Err(e), None) => return Err(e),
                    (Err(e), Some(_)) => refusals.push((name, format!("unavailable: {e}"))),
                }
            }
            let possible = n - refusals.len();
            let needed = match self.threshold {
                None => n,
                Some(t) => t.max(spec.min_institutions as usize),
            };
            if pending.is_empty() || possible < needed {
                break;
            }
            pending.sort();
            let names: Vec<&str> = pending
                .iter()
                .map(|&i| self.nodes[i].address.name.as_str())
                .collect();
            self.store.set_phase(
                query_id,
                "proposed",
                &format!("awaiting approval at {}", names.join(", ")),
            )?;
            tokio::time::sleep(APPROVAL_POLL).await;
            asking = pending;
        }
        refusals.sort();
        let required = match self.threshold {
            None => spec.min_institutions as usize,
            Some(t) => t.max(spec.min_institutions as usize),
        };
        if agreed.len() < required {
            let refusals = refusals
                .iter()
                .map(|(n, r)| format!("{n}: {r}"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(CoordinatorError::TooFewAgreed {
                query: query_id.into(),
                agreed: agreed.len(),
                required,
                refusals,
            });
        }
        match (refusals.into_iter().next(), self.threshold) {
            (Some((node, reason)), None) => Err(CoordinatorError::Refused {
                query: query_id.into(),
                node,
                reason,
            }),
            (Some((node, reason)), Some(_)) => {
                tracing::warn!(query = %query_id, %node, %reason, "left out (threshold mode)");
                Ok(agreed)
            }
            (None, _) => Ok(agreed),
        }
    }
}
