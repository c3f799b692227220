//! The coordinator's gRPC service for researchers (proto `concord.v1.Coordinator`): submit a
//! query, follow it, read its result. Queries run one at a time in the background; every phase
//! change is written to the [`QueryStore`] first.

use crate::store::{QueryRecord, QueryStore};
use crate::{Coordinator, NodeAddress};
use concord_api::pki::Role;
use concord_api::tls::require_role;
use concord_api::v1::coordinator_server::Coordinator as CoordinatorApi;
use concord_api::v1::{QueryRef, QuerySpec, QueryStatus};
use rand_core::{OsRng, RngCore};
use std::sync::Arc;
use tokio::sync::Mutex;
use tonic::{Request, Response, Status};

/// How the service reaches the nodes: connected on first use, kept afterwards.
pub struct Nodes {
    pub ca_pem: String,
    pub certificate_pem: String,
    pub key_pem: String,
    pub addresses: Vec<NodeAddress>,
    pub connected: Option<Coordinator>,
}

pub struct CoordinatorService {
    store: Arc<QueryStore>,
    nodes: Arc<Mutex<Nodes>>,
}

impl CoordinatorService {
    pub fn new(store: Arc<QueryStore>, nodes: Nodes) -> Self {
        Self {
            store,
            nodes: Arc::new(Mutex::new(nodes)),
        }
    }
}

fn status_of(r: &QueryRecord) -> QueryStatus {
    QueryStatus {
        query_id: r.id.clone(),
        spec: Some(QuerySpec {
            template: r.template.clone(),
            template_version: r.template_version,
            window_first: r.window_first.clone(),
            window_months: r.window_months,
            min_institutions: r.min_institutions,
        }),
        phase: r.phase.clone(),
        detail: r.detail.clone(),
        cells: r.cells.clone(),
        institutions: r.institutions,
        events_covered: r.events_covered,
        smudging_lambda: r.smudging_lambda,
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[tonic::async_trait]
impl CoordinatorApi for CoordinatorService {
    async fn submit(&self, request: Request<QuerySpec>) -> Result<Response<QueryStatus>, Status> {
        let researcher = require_role(&request, Role::Researcher)?;
        let spec = request.into_inner();
        concord_stats::Template::by_id(&spec.template)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if spec.min_institutions < 2 {
            return Err(Status::invalid_argument(
                "min_institutions must be at least 2",
            ));
        }
        let id = format!("q-{:016x}", OsRng.next_u64());
        let record = QueryRecord {
            id: id.clone(),
            researcher: researcher.name,
            template: spec.template.clone(),
            template_version: spec.template_version,
            window_first: spec.window_first.clone(),
            window_months: spec.window_months,
            min_institutions: spec.min_institutions,
            phase: "submitted".into(),
            detail: String::new(),
            cells: Vec::new(),
            institutions: 0,
            events_covered: 0,
            smudging_lambda: 0.0,
        };
        self.store.put(&record).map_err(internal)?;
        let (store, nodes) = (self.store.clone(), self.nodes.clone());
        tokio::spawn(async move {
            let mut nodes = nodes.lock().await;
            let result = async {
                if nodes.connected.is_none() {
                    let c = Coordinator::connect(
                        &nodes.ca_pem,
                        &nodes.certificate_pem,
                        &nodes.key_pem,
                        &nodes.addresses,
                    )
                    .await?;
                    nodes.connected = Some(c);
                }
                let coordinator = nodes.connected.as_mut().expect("connected");
                let progress_store = store.clone();
                let progress_id = id.clone();
                let mut progress = move |phase: &'static str| {
                    if let Err(e) = progress_store.set_phase(&progress_id, phase, "") {
                        tracing::error!("{e}");
                    }
                };
                coordinator
                    .run_query_with_progress(&id, spec, &mut progress)
                    .await
            }
            .await;
            let mut record = match store.get(&id) {
                Ok(Some(r)) => r,
                _ => return,
            };
            match result {
                Ok(outcome) => {
                    record.phase = "released".into();
                    record.cells = outcome.cells.iter().map(|c| c.to_string()).collect();
                    record.institutions = outcome.contributors.len() as u32;
                    record.events_covered = outcome.events_covered;
                    record.smudging_lambda = outcome.smudging_lambda;
                }
                Err(e) => {
                    record.phase = "failed".into();
                    record.detail = e.to_string();
                    // a broken connection is re-established for the next query
                    nodes.connected = None;
                }
            }
            if let Err(e) = store.put(&record) {
                tracing::error!("{e}");
            }
            tracing::info!(query = %record.id, phase = %record.phase, "query finished");
        });
        Ok(Response::new(status_of(&record)))
    }

    async fn get(&self, request: Request<QueryRef>) -> Result<Response<QueryStatus>, Status> {
        let researcher = require_role(&request, Role::Researcher)?;
        let id = request.into_inner().query_id;
        let record = self
            .store
            .get(&id)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no query {id:?}")))?;
        if record.researcher != researcher.name {
            return Err(Status::permission_denied(format!(
                "query {id:?} belongs to another researcher"
            )));
        }
        Ok(Response::new(status_of(&record)))
    }
}
