//! The coordinator's gRPC service for researchers (proto `concord.v1.Coordinator`): submit a
//! query, follow it, list one's queries, read a result. Every query runs in the background on
//! its own, driven by [`Coordinator::run`] over its own connections to the nodes, so a query
//! waiting for an operator's approval or a slow node delays no other (a key setup, the first
//! time a parameter set is used, is the one step queries take in turn); on start-up, queries a
//! previous run left unfinished are resumed.

use crate::store::{QueryRecord, QueryStore};
use crate::{Coordinator, Deployment, NodeAddress};
use concord_api::lifecycle::Phase;
use concord_api::pki::Role;
use concord_api::tls::require_role;
use concord_api::v1::coordinator_server::Coordinator as CoordinatorApi;
use concord_api::v1::{
    BudgetList, Enrolment, ListRequest, Member, MemberList, QueryList, QueryRef, QuerySpec,
    QueryStatus,
};
use std::sync::Arc;
use tokio::sync::Mutex;
use tonic::{Request, Response, Status};

pub struct CoordinatorService {
    ca_pem: String,
    store: Arc<QueryStore>,
    /// The most queries one researcher may have in flight.
    max_in_flight: usize,
    /// The deployment as of the last query started: the nodes enrolled by then.
    deployment: Arc<Mutex<Deployment>>,
}

impl CoordinatorService {
    /// The service; queries left unfinished by a previous run are resumed in the background.
    pub fn new(store: Arc<QueryStore>, deployment: Deployment, max_in_flight: usize) -> Self {
        let service = Self {
            ca_pem: deployment.ca_pem.clone(),
            store,
            max_in_flight,
            deployment: Arc::new(Mutex::new(deployment)),
        };
        match service.store.unfinished() {
            Ok(unfinished) => {
                for record in unfinished {
                    tracing::info!(query = %record.id, phase = %record.phase, "resuming a query left unfinished");
                    service.run_in_background(record);
                }
            }
            Err(e) => tracing::error!("{e}"),
        }
        service
    }

    /// The deployment with the nodes enrolled now (they take part from the next query on).
    async fn current_deployment(store: &QueryStore, shared: &Mutex<Deployment>) -> Deployment {
        let mut deployment = shared.lock().await;
        match enrolled(store) {
            Ok(addresses) if addresses != deployment.nodes => {
                tracing::info!(nodes = addresses.len(), "the set of nodes changed");
                deployment.nodes = addresses;
            }
            Ok(_) => {}
            Err(e) => tracing::error!("{e}"),
        }
        deployment.clone()
    }

    /// Runs the query on its own task, over its own connections to the nodes enrolled now.
    fn run_in_background(&self, record: QueryRecord) {
        let (store, shared) = (self.store.clone(), self.deployment.clone());
        tokio::spawn(async move {
            let deployment = Self::current_deployment(&store, &shared).await;
            match Coordinator::connect(&deployment, store.clone()) {
                // its outcome is recorded by `run`
                Ok(mut coordinator) => {
                    let _ = coordinator.run(record).await;
                }
                Err(e) => {
                    let mut record = record;
                    record.detail = e.to_string();
                    record.phase = Phase::Failed;
                    if let Err(e) = store.finish(&record, &[]) {
                        tracing::error!("{e}");
                    }
                }
            }
        });
    }
}

/// The enrolled nodes, by party number.
pub fn enrolled(store: &QueryStore) -> Result<Vec<NodeAddress>, crate::store::StoreError> {
    Ok(store
        .nodes()?
        .into_iter()
        .map(|(name, node)| NodeAddress {
            name,
            url: node.url,
            party: node.party,
        })
        .collect())
}

fn status_of(r: &QueryRecord) -> QueryStatus {
    QueryStatus {
        query_id: r.id.clone(),
        spec: Some(r.spec()),
        phase: r.phase.to_wire().into(),
        detail: r.detail.clone(),
        cells: r.cells.clone(),
        institutions: r.institutions,
        smudging_lambda: r.smudging_lambda,
        asked: r.asked,
        contributed: r.contributed.len() as u32,
        submitted_at: r.submitted_at,
        sealed: Vec::new(),
        contributors: r.contributed.clone(),
        shares_from: r.shares_from.clone(),
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[tonic::async_trait]
impl CoordinatorApi for CoordinatorService {
    async fn submit(&self, request: Request<QuerySpec>) -> Result<Response<QueryStatus>, Status> {
        let researcher = require_role(&request, Role::Researcher)?;
        let certificate = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|c| c.to_vec()))
            .unwrap_or_default();
        let spec = request.into_inner();
        // every refusal counted by its reason (a bounded set: the agreement's refusal codes
        // and the checks below), `concord_submissions_refused_total{reason}`
        let refused = |reason: &'static str, status: Status| {
            metrics::counter!("concord_submissions_refused_total", "reason" => reason).increment(1);
            status
        };
        let invalid = |reason: &'static str, e: &dyn std::fmt::Display| {
            refused(reason, Status::invalid_argument(e.to_string()))
        };
        if spec.min_institutions < 2 {
            return Err(invalid(
                "min-institutions",
                &"min_institutions must be at least 2",
            ));
        }
        // more institutions than are enrolled can never be met: said now, not after proposing
        let enrolled = enrolled(&self.store).map_err(internal)?.len();
        if spec.min_institutions as usize > enrolled {
            return Err(invalid("min-institutions", &format!(
                "min_institutions {} but {enrolled} institutions are enrolled (concord query members lists them)",
                spec.min_institutions
            )));
        }
        // a query the nodes would refuse as invalid is refused here already (template and
        // version, window, DP terms, recipient key — of the set the query takes for this many
        // institutions), for the enrolled nodes it will be proposed to
        spec.agreement(enrolled)
            .map_err(|e| invalid(e.code(), &e))?;
        // a signed query must verify here already; nodes check it again themselves
        if !spec.signature.is_empty() {
            concord_api::submission::verify(&self.ca_pem, &certificate, &spec)
                .map_err(|e| invalid("unsigned-query", &e))?;
        }
        // the id derives from the query as signed: submitting it again finds it
        let id = concord_api::submission::query_id(&spec);
        if let Some(detail) =
            concord_api::submission::check_binding(&id, &spec, concord_api::submission::now())
        {
            return Err(invalid("invalid-query", &detail));
        }
        if spec.expires_at <= concord_api::submission::now() {
            return Err(invalid("query-expired", &"the query has expired"));
        }
        if let Some(record) = self.store.get(&id).map_err(internal)? {
            if record.researcher == researcher.name {
                return Ok(Response::new(status_of(&record)));
            }
            return Err(refused(
                "query-id-reused",
                Status::already_exists("this query was submitted already"),
            ));
        }
        let in_flight = self
            .store
            .unfinished()
            .map_err(internal)?
            .iter()
            .filter(|r| r.researcher == researcher.name)
            .count();
        if in_flight >= self.max_in_flight {
            return Err(refused("in-flight-limit", Status::resource_exhausted(format!(
                "{in_flight} of your queries are still running, the most this coordinator runs at once for one researcher; submit again when one has ended"
            ))));
        }
        metrics::counter!("concord_queries_submitted_total").increment(1);
        let key = spec.recipient_key.clone();
        let record = QueryRecord::submitted(id, researcher.name, certificate, spec);
        self.store.submit(&record, &key).map_err(internal)?;
        self.run_in_background(record.clone());
        Ok(Response::new(status_of(&record)))
    }

    async fn get(&self, request: Request<QueryRef>) -> Result<Response<QueryStatus>, Status> {
        let researcher = require_role(&request, Role::Researcher)?;
        let id = request.into_inner().query_id;
        // another researcher's query and no query answer alike: ids are not disclosed
        let record = self
            .store
            .get(&id)
            .map_err(internal)?
            .filter(|record| record.researcher == researcher.name)
            .ok_or_else(|| Status::not_found(format!("no query {id:?} of yours")))?;
        let sealed = self.store.sealed_result(&id).map_err(internal)?;
        let mut status = status_of(&record);
        // the whole signed query, the key its result is sealed to included
        if let Some(spec) = &mut status.spec {
            spec.recipient_key = self.store.recipient_key(&id).map_err(internal)?;
        }
        Ok(Response::new(QueryStatus { sealed, ..status }))
    }

    type WatchStream = tokio_stream::wrappers::ReceiverStream<Result<QueryStatus, Status>>;

    async fn watch(
        &self,
        request: Request<QueryRef>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let first = self.get(request).await?.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut last = first;
            let mut finished = last.is_finished();
            if tx.send(Ok(last.clone())).await.is_err() {
                return;
            }
            while !finished {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let status = match store.get(&last.query_id) {
                    Ok(Some(record)) => status_of(&record),
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(internal(e))).await;
                        return;
                    }
                };
                finished = status.is_finished();
                if status != last {
                    if tx.send(Ok(status.clone())).await.is_err() {
                        return; // the watcher left
                    }
                    last = status;
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn members(&self, request: Request<ListRequest>) -> Result<Response<MemberList>, Status> {
        require_role(&request, Role::Researcher)?;
        let members = enrolled(&self.store)
            .map_err(internal)?
            .into_iter()
            .map(|n| Member {
                name: n.name,
                party: n.party,
            })
            .collect();
        Ok(Response::new(MemberList { members }))
    }

    async fn enrol(&self, request: Request<Enrolment>) -> Result<Response<Member>, Status> {
        let node = require_role(&request, Role::Node)?;
        let url = request.into_inner().url;
        if !url.starts_with("https://")
            || tonic::transport::Endpoint::from_shared(url.clone()).is_err()
        {
            return Err(Status::invalid_argument(format!(
                "{url:?} is not an https:// address"
            )));
        }
        let party = self.store.enrol(&node.name, &url, None).map_err(internal)?;
        tracing::info!(node = %node.name, %url, party, "node enrolled");
        Ok(Response::new(Member {
            name: node.name,
            party,
        }))
    }

    async fn budget(&self, request: Request<ListRequest>) -> Result<Response<BudgetList>, Status> {
        let researcher = require_role(&request, Role::Researcher)?;
        let deployment = Self::current_deployment(&self.store, &self.deployment).await;
        let coordinator = Coordinator::connect(&deployment, self.store.clone())
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(coordinator.budgets(&researcher.name).await))
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<QueryList>, Status> {
        let researcher = require_role(&request, Role::Researcher)?;
        let queries = self
            .store
            .all()
            .map_err(internal)?
            .iter()
            .filter(|r| r.researcher == researcher.name)
            .map(|r| QueryStatus {
                cells: Vec::new(),
                ..status_of(r)
            })
            .collect();
        Ok(Response::new(QueryList { queries }))
    }
}
