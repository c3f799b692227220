//! The node pool: one lazily connected mTLS channel per node, concurrent calls each bounded by
//! the timeout, and the traffic and wall time of every step for the step reports.

use crate::{CoordinatorError, Deployment, NodeAddress};
use concord_api::tls::{client_config, MAX_MESSAGE_BYTES};
use concord_api::v1::node_client::NodeClient;
use concord_mhe::PartyId;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};

/// A request as the traffic counters weigh it: its protobuf size.
pub trait Weighed {
    fn weight(&self) -> usize;
}

impl<M: prost::Message> Weighed for M {
    fn weight(&self) -> usize {
        self.encoded_len()
    }
}

/// A request shared by every node it is sent to, streamed from one copy
/// (`concord-api` `chunks::shared_stream`).
pub struct Shared<M>(pub Arc<M>);

impl<M: prost::Message> Weighed for Shared<M> {
    fn weight(&self) -> usize {
        self.0.encoded_len()
    }
}

/// A step of the coordinator's work that a [`StepReport`] measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Collective key generation (and threshold setup) for a parameter set.
    Setup,
    Proposal,
    Contribution,
    Verification,
    Decryption,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Proposal => "proposal",
            Self::Contribution => "contribution",
            Self::Verification => "verification",
            Self::Decryption => "decryption",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What one step of a query (or a setup) took: wall time at the coordinator, and the gRPC
/// message bytes it sent to and received from the nodes (protobuf-encoded; TLS and HTTP/2
/// framing add a little).
#[derive(Clone, Debug)]
pub struct StepReport {
    /// The query id, or the parameter set for a setup.
    pub query: String,
    pub step: Step,
    pub wall: Duration,
    pub sent: u64,
    pub received: u64,
}

/// Message bytes moved since the last step ended.
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

type Observer = Box<dyn FnMut(&StepReport) + Send + Sync>;

#[derive(Clone)]
struct Connected {
    address: NodeAddress,
    client: NodeClient<Channel>,
}

/// Replies of concurrent node calls, each with the index of the node that gave it.
pub(crate) type Calls<T> = JoinSet<(usize, Result<T, CoordinatorError>)>;

/// Every node of the deployment, reachable.
pub(crate) struct NodePool {
    nodes: Vec<Connected>,
    timeout: Duration,
    traffic: Arc<Traffic>,
    observer: Option<Observer>,
}

impl NodePool {
    /// Prepares a channel to every node with the coordinator's certificate. Channels connect
    /// on first use (and again after a failure), so a node that is down or hangs costs only
    /// the calls made to it, each bounded by the timeout. Call it within a tokio runtime.
    pub fn connect(deployment: &Deployment) -> Result<Self, CoordinatorError> {
        let mut nodes = Vec::new();
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
            nodes.push(Connected {
                address: address.clone(),
                client,
            });
        }
        Ok(Self {
            nodes,
            timeout: deployment.timeout,
            traffic: Arc::default(),
            observer: None,
        })
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn address(&self, i: usize) -> &NodeAddress {
        &self.nodes[i].address
    }

    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].address.name
    }

    /// Every node's party number, in pool order.
    pub fn parties(&self) -> Vec<PartyId> {
        self.nodes
            .iter()
            .map(|n| PartyId(n.address.party))
            .collect()
    }

    /// Every node as the store records it: (name, party number).
    pub fn members(&self) -> Vec<(String, u32)> {
        self.nodes
            .iter()
            .map(|n| (n.address.name.clone(), n.address.party))
            .collect()
    }

    /// Calls the nodes `which` concurrently — `request` makes each node's request, `call`
    /// sends it — each call bounded by the timeout; replies are handed back as they arrive,
    /// with the node's index. Bytes both ways are counted for the step report.
    pub fn call_each<Req, T, F, Fut>(
        &self,
        which: impl IntoIterator<Item = usize>,
        request: impl Fn(&NodeAddress) -> Req,
        call: F,
    ) -> Calls<T>
    where
        Req: Weighed,
        T: prost::Message + 'static,
        F: Fn(NodeClient<Channel>, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send + 'static,
    {
        let mut set = JoinSet::new();
        for i in which {
            let node = &self.nodes[i];
            let request = request(&node.address);
            self.traffic.count_sent(request.weight());
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

    /// Calls every node of `which` and waits for all replies, the first error ending it.
    pub async fn call_all<Req, T, F, Fut>(
        &self,
        which: impl IntoIterator<Item = usize>,
        request: impl Fn(&NodeAddress) -> Req,
        call: F,
    ) -> Result<Vec<(usize, T)>, CoordinatorError>
    where
        Req: Weighed,
        T: prost::Message + 'static,
        F: Fn(NodeClient<Channel>, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send + 'static,
    {
        let mut calls = self.call_each(which, request, call);
        let mut replies = Vec::new();
        while let Some((i, reply)) = next(&mut calls).await {
            replies.push((i, reply?));
        }
        Ok(replies)
    }

    /// Ends a step: logs and reports its wall time and the bytes it moved.
    pub fn step_done(&mut self, query: &str, step: Step, started: Instant) {
        let (sent, received) = self.traffic.take();
        let report = StepReport {
            query: query.to_owned(),
            step,
            wall: started.elapsed(),
            sent,
            received,
        };
        let label = step.as_str();
        metrics::histogram!("concord_step_seconds", "step" => label)
            .record(report.wall.as_secs_f64());
        metrics::counter!("concord_step_bytes_total", "step" => label, "direction" => "sent")
            .increment(sent);
        metrics::counter!("concord_step_bytes_total", "step" => label, "direction" => "received")
            .increment(received);
        tracing::info!(
            query,
            step = step.as_str(),
            ms = report.wall.as_secs_f64() * 1e3,
            sent,
            received,
            "step done"
        );
        if let Some(observer) = &mut self.observer {
            observer(&report);
        }
    }

    pub fn observe(&mut self, observer: impl FnMut(&StepReport) + Send + Sync + 'static) {
        self.observer = Some(Box::new(observer));
    }
}

/// Waits for the next reply of [`NodePool::call_each`].
pub(crate) async fn next<T: 'static>(
    set: &mut Calls<T>,
) -> Option<(usize, Result<T, CoordinatorError>)> {
    set.join_next()
        .await
        .map(|joined| joined.expect("node calls do not panic"))
}
