//! The node's gRPC service (proto `concord.v1.Node`): thin handlers over the node's logic.
//! Each checks that the caller is the coordinator this node serves (the coordinator role, and
//! the certificate name its configuration pins), then hands the request to the module that holds
//! what it asks for:
//!
//! | rpc | module |
//! |---|---|
//! | `Setup`, `Pin`, `ExchangeKeyOf`, `Reshare`, `Combine` | [`crate::keygen`] (pinned deployment) |
//! | `Propose` | [`crate::admission`] (policy, operator's approval, privacy budget) |
//! | `Commit`, `Reveal` | [`crate::contribution`] (commit before reveal, one roster) |
//! | `Decrypt` | [`crate::release`] (the node's own sum of the roster, shares at most once) |
//!
//! Agreements, contributions and released shares are durable ([`NodeState`]), so a node
//! restart loses none; every decision, contribution and release is in the audit log.

use crate::admission::{internal, shown, Agreed, Outcome};
use crate::approvals::Approvals;
use crate::audit::{hex, AuditLog};
use crate::config::Policy;
use crate::keystore::KeyStore;
use crate::state::NodeState;
use concord_api::chunks::{collect, replies, Chunked, Replies};
use concord_api::lifecycle::RefusalCode;
use concord_api::pki::{Identity, Role};
use concord_api::tls::require_role;
use concord_api::v1::node_server::Node;
use concord_api::v1::*;
use concord_stats::Institution;
use prost::Message;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use tonic::{Request, Response, Status, Streaming};

/// The node's own certificate and key, to sign its evidence, and the deployment's CA, to check
/// researchers' and other nodes' signatures.
pub struct Credentials {
    pub ca_pem: String,
    pub certificate_der: Vec<u8>,
    pub key_pem: zeroize::Zeroizing<String>,
}

/// The node's durable records: what it agreed to and released, its audit log, and its
/// operator's approvals.
pub struct Records {
    pub state: NodeState,
    pub audit: AuditLog,
    pub approvals: Approvals,
}

pub struct NodeService {
    pub(crate) keys: KeyStore,
    pub(crate) events: std::sync::Arc<crate::data::Events>,
    pub(crate) institution: Institution,
    pub(crate) policy: Policy,
    pub(crate) state: NodeState,
    pub(crate) audit: AuditLog,
    pub(crate) approvals: Approvals,
    pub(crate) credentials: Credentials,
    /// This node's certificate name.
    pub(crate) name: String,
    /// The certificate name of the only coordinator this node answers.
    pub(crate) coordinator: String,
    /// The queries this node agreed to, by id.
    pub(crate) agreed: Mutex<HashMap<String, Agreed>>,
    /// Per researcher, the new queries proposed in the last hour (when, id): the rate limit.
    pub(crate) recent: Mutex<HashMap<String, Vec<(std::time::Instant, String)>>>,
}

impl NodeService {
    pub fn new(
        keys: KeyStore,
        events: std::sync::Arc<crate::data::Events>,
        institution: Institution,
        policy: Policy,
        coordinator: String,
        records: Records,
        credentials: Credentials,
    ) -> Result<Self, concord_api::pki::PkiError> {
        let name = concord_api::pki::identity_of(&credentials.certificate_der)?.name;
        let service = Self {
            keys,
            events,
            institution,
            policy,
            state: records.state,
            audit: records.audit,
            approvals: records.approvals,
            credentials,
            name,
            coordinator,
            agreed: Mutex::new(HashMap::new()),
            recent: Mutex::new(HashMap::new()),
        };
        service.restore_agreements();
        Ok(service)
    }

    /// The caller, if it is the coordinator this node serves.
    fn coordinator<T>(&self, request: &Request<T>) -> Result<Identity, Status> {
        let caller = require_role(request, Role::Coordinator)?;
        if caller.name != self.coordinator {
            tracing::warn!(caller = %shown(&caller.name), "refused a coordinator certificate this node does not serve");
            return Err(Status::permission_denied(format!(
                "this node serves the coordinator {:?}, not {:?}",
                self.coordinator,
                shown(&caller.name)
            )));
        }
        Ok(caller)
    }

    /// Appends to the audit log; a node that cannot keep its record refuses to go on.
    pub(crate) fn audit(
        &self,
        event: &str,
        fields: serde_json::Value,
        sync: bool,
    ) -> Result<(), Status> {
        self.audit
            .record(event, fields, sync)
            .map_err(|e| Status::internal(format!("audit log: {e}")))
    }

    /// Records an agreement (durably, then in memory) and answers the decision.
    fn decision(
        &self,
        proposal: &Proposal,
        encoded: &[u8],
    ) -> Result<(Decision, Option<String>, bool), Status> {
        Ok(match self.admit(proposal, encoded)? {
            Outcome::Agree(agreed, approved_by)
                if !self.charge(proposal, &agreed).map_err(internal)? =>
            {
                let dp = agreed
                    .agreement
                    .plan
                    .dp
                    .as_ref()
                    .expect("only DP queries are charged");
                let detail = self.budget_detail(&proposal.researcher, dp);
                (
                    refusal(RefusalCode::BudgetExhausted, detail),
                    approved_by,
                    true,
                )
            }
            Outcome::Agree(agreed, approved_by) => {
                self.state
                    .agree(&proposal.query_id, encoded)
                    .map_err(internal)?;
                self.agreed
                    .lock()
                    .expect("agreements lock")
                    .insert(proposal.query_id.clone(), *agreed);
                let agree = Decision {
                    agree: true,
                    ..Default::default()
                };
                (agree, approved_by, true)
            }
            Outcome::Pending { first } => (
                Decision {
                    pending: true,
                    reason: RefusalCode::AwaitingApproval.as_str().into(),
                    detail: "waiting for the approval of this institution's operator".into(),
                    ..Default::default()
                },
                None,
                first,
            ),
            Outcome::Refuse(r) => (refusal(r.code, r.detail), None, true),
        })
    }
}

/// A reply's outcome as a metric label: "ok", or the gRPC code of the refusal.
fn outcome<T>(reply: &Result<T, Status>) -> &'static str {
    match reply {
        Ok(_) => "ok",
        Err(status) => match status.code() {
            tonic::Code::InvalidArgument => "invalid-argument",
            tonic::Code::FailedPrecondition => "failed-precondition",
            tonic::Code::PermissionDenied => "permission-denied",
            tonic::Code::NotFound => "not-found",
            tonic::Code::AlreadyExists => "already-exists",
            tonic::Code::ResourceExhausted => "resource-exhausted",
            _ => "error",
        },
    }
}

fn refusal(code: RefusalCode, detail: String) -> Decision {
    Decision {
        agree: false,
        reason: code.as_str().into(),
        detail,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn setup(
        &self,
        request: Request<SetupRequest>,
    ) -> Result<Response<SignedKeyShare>, Status> {
        self.coordinator(&request)?;
        Ok(Response::new(
            self.setup(request.get_ref().deployment.as_ref())?,
        ))
    }

    async fn pin(
        &self,
        request: Request<Streaming<PinRequest>>,
    ) -> Result<Response<PinnedKey>, Status> {
        self.coordinator(&request)?;
        // at most one share per party of the deployment
        let req = collect(request.into_inner(), |first| {
            Ok(first.deployment.as_ref().map_or(0, |d| d.parties.len()))
        })
        .await?;
        Ok(Response::new(self.pin(&req)?))
    }

    async fn exchange_key_of(
        &self,
        request: Request<ExchangeKeyRequest>,
    ) -> Result<Response<ExchangeKey>, Status> {
        self.coordinator(&request)?;
        Ok(Response::new(self.exchange_key()?))
    }

    type ReshareStream = Replies<Resharings>;

    async fn reshare(
        &self,
        request: Request<ReshareRequest>,
    ) -> Result<Response<Self::ReshareStream>, Status> {
        self.coordinator(&request)?;
        let setup = request
            .into_inner()
            .setup
            .ok_or_else(|| Status::invalid_argument("no threshold setup"))?;
        let resharings = self.resharings(&setup)?;
        self.audit(
            "key-generation",
            json!({
                "protocol": "reshare",
                "set": setup.parameter_set,
                "crs": hex(&setup.crs_seed),
                "threshold": setup.threshold,
                "parties": setup.parties.iter().map(|p| p.party).collect::<Vec<_>>(),
            }),
            true,
        )?;
        Ok(Response::new(replies(resharings)))
    }

    async fn combine(
        &self,
        request: Request<Streaming<CombineRequest>>,
    ) -> Result<Response<CombineReply>, Status> {
        self.coordinator(&request)?;
        let req = collect(request.into_inner(), |first| {
            Ok(first.setup.as_ref().map_or(0, |s| s.parties.len()))
        })
        .await?;
        self.combine(&req)?;
        Ok(Response::new(CombineReply {}))
    }

    async fn relinearize_one(
        &self,
        request: Request<RelinearizeRequest>,
    ) -> Result<Response<RelinearizeShare>, Status> {
        self.coordinator(&request)?;
        Ok(Response::new(self.relinearize_one(request.get_ref())?))
    }

    async fn relinearize_two(
        &self,
        request: Request<Streaming<RelinearizeRequest>>,
    ) -> Result<Response<RelinearizeShare>, Status> {
        self.coordinator(&request)?;
        // one share per party of the deployment named
        let req = collect(request.into_inner(), |first| {
            self.evaluation_parties(&first.deployment)
        })
        .await?;
        Ok(Response::new(self.relinearize_two(&req)?))
    }

    async fn pin_relinearization(
        &self,
        request: Request<Streaming<RelinearizeRequest>>,
    ) -> Result<Response<PinnedKey>, Status> {
        self.coordinator(&request)?;
        // one share per party and round
        let req = collect(request.into_inner(), |first| {
            Ok(2 * self.evaluation_parties(&first.deployment)?)
        })
        .await?;
        Ok(Response::new(self.pin_relinearization(&req)?))
    }

    async fn propose(&self, request: Request<Proposal>) -> Result<Response<Decision>, Status> {
        self.coordinator(&request)?;
        let proposal = request.into_inner();
        let encoded = proposal.encode_to_vec();
        let (decision, approved_by, log) = self.decision(&proposal, &encoded)?;
        if !log {
            return Ok(Response::new(decision));
        }
        let outcome = match (decision.agree, decision.pending) {
            (true, _) => "agree",
            (_, true) => "pending",
            _ => "refuse",
        };
        metrics::counter!("concord_proposals_total", "decision" => outcome, "reason" => decision.reason.clone())
            .increment(1);
        tracing::info!(query = %shown(&proposal.query_id), agree = decision.agree, pending = decision.pending, reason = %decision.reason, "decided on a proposal");
        let spec = proposal.spec.clone().unwrap_or_default();
        self.audit(
            "proposal",
            json!({
                "query": shown(&proposal.query_id),
                "researcher": shown(&proposal.researcher),
                "template": spec.template,
                "template_version": spec.template_version,
                "window": format!("{} +{}", spec.window_first, spec.window_months),
                "deployment": hex(&proposal.deployment),
                "release": spec.release_mode().as_str(),
                "epsilon": spec.epsilon,
                "delta": spec.delta,
                "publish": spec.publish,
                "agree": decision.agree,
                "pending": decision.pending,
                "approved_by": approved_by,
                "reason": decision.reason,
                "detail": decision.detail,
            }),
            false,
        )?;
        Ok(Response::new(decision))
    }

    async fn commit(
        &self,
        request: Request<CommitRequest>,
    ) -> Result<Response<Commitment>, Status> {
        self.coordinator(&request)?;
        let commitment = self.commit(request.get_ref());
        metrics::counter!("concord_commitments_total", "outcome" => outcome(&commitment))
            .increment(1);
        Ok(Response::new(commitment?))
    }

    type RevealStream = Replies<Contribution>;

    async fn reveal(
        &self,
        request: Request<RevealRequest>,
    ) -> Result<Response<Self::RevealStream>, Status> {
        self.coordinator(&request)?;
        Ok(Response::new(replies(self.reveal(request.get_ref())?)))
    }

    type DecryptStream = Replies<DecryptShares>;

    async fn decrypt(
        &self,
        request: Request<Streaming<DecryptRequest>>,
    ) -> Result<Response<Self::DecryptStream>, Status> {
        self.coordinator(&request)?;
        let mut parts = request.into_inner();
        let req = parts
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty stream"))?;
        // verifying the aggregate and deriving a threshold key take a while: off the reactor;
        // the later messages' ciphertexts are read there, one at a time, as the sum needs them
        let handle = tokio::runtime::Handle::current();
        let mut rest = std::iter::from_fn(|| {
            let mut later = DecryptRequest::default();
            match handle.block_on(parts.message()) {
                Ok(Some(message)) => Some(later.join(message).map(|()| later.ciphertexts)),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }
        })
        .flat_map(|ciphertexts| match ciphertexts {
            Ok(all) => all.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        });
        let shares = tokio::task::block_in_place(|| self.release(&req, &mut rest));
        metrics::counter!("concord_releases_total", "outcome" => outcome(&shares)).increment(1);
        Ok(Response::new(replies(shares?)))
    }

    async fn budget(
        &self,
        request: Request<BudgetRequest>,
    ) -> Result<Response<BudgetReport>, Status> {
        self.coordinator(&request)?;
        let researcher = &request.get_ref().researcher;
        let spent = self
            .budgets(Some(researcher))
            .map_err(crate::admission::internal)?;
        Ok(Response::new(BudgetReport {
            node: self.name.clone(),
            spent: spent.into_iter().map(|(_, s)| s).collect(),
            epsilon_budget: self.policy.epsilon_budget,
            delta: self.policy.budget_delta,
        }))
    }
}
