//! The node's gRPC service: what the coordinator may ask of it (proto `concord.v1.Node`).
//!
//! - `Setup`: its CKG share under its persistent key share;
//! - `Propose`: agree or refuse by its own [`Policy`], with a machine-readable reason;
//! - `Contribute`: its statistic over its own data, encrypted under the collective key — only
//!   for a query it agreed to;
//!   It signs a commitment to it, and gives the same contribution if asked again;
//! - `Fingerprint`: its own contribution evaluated at the challenge derived from everything
//!   committed, signed (aggregate verification, `concord-mhe` `fingerprint`);
//! - `Decrypt`: shares of the aggregate — a key switch to the recipient key the node saw in the
//!   proposal (PCKS), or, where its policy allows public results, a joint-decryption share
//!   (CKS) — only for a query it agreed to, only for an aggregate it has **verified** to be the
//!   sum of at least the agreed number of contributions to this query, signed by distinct
//!   institutions of the deployment, its own included, and at most once per query: the same
//!   request again gets the same shares back, any other is refused ([`NodeState`]).
//!
//! Agreements, contributions and released shares are durable, so a node restart loses none.

use crate::approvals::{self, Approvals};
use crate::audit::{hex, AuditLog};
use crate::config::{Approval, Policy};
use crate::keystore::{KeyStore, StoredThreshold};
use crate::state::{NodeState, Released, Spent, StateError};
use crate::threshold;
use concord_api::chunks::{collect, replies, Replies};
use concord_api::pki::Role;
use concord_api::submission;
use concord_api::tls::require_role;
use concord_api::v1::node_server::Node;
use concord_api::v1::*;
use concord_api::{evidence, exchange};
use concord_bfv::{params, BfvParameters, Ciphertext, PublicKey, SecretKey};
use concord_mhe::fingerprint;
use concord_mhe::threshold::{reshare, Resharing};
use concord_mhe::ThresholdSecretKey;
use concord_mhe::{
    CollectiveDecryption, CommonReferenceString, NoiseEstimate, PartyId, PublicKeyGen,
    PublicKeySwitch, SmudgingPlan,
};
use concord_query::dp::{self, DpError, DpPlan};
use concord_query::{QueryError, QueryPlan};
use concord_stats::{Event, Institution, Template, Window, YearMonth};
use prost::Message;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use tonic::{Request, Response, Status, Streaming};

/// A query this node agreed to.
#[derive(Clone)]
struct Agreement {
    /// The query as proposed.
    spec: QuerySpec,
    /// What contributions and fingerprints are bound to.
    binding: evidence::QueryBinding,
    plan: QueryPlan,
    min_institutions: usize,
    /// The researcher's key the result is switched to; `None`: a public result (CKS).
    recipient: Option<PublicKey>,
}

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

/// How the node answers a proposal.
enum Outcome {
    /// Agreed — by the policy alone, or approved by the named operator.
    Agree(Box<Agreement>, Option<String>),
    /// Admitted by the policy, waiting for the operator (`first`: seen for the first time).
    Pending {
        first: bool,
    },
    Refuse(&'static str, String),
}

pub struct NodeService {
    keys: KeyStore,
    events: Vec<Event>,
    institution: Institution,
    policy: Policy,
    state: NodeState,
    audit: AuditLog,
    approvals: Approvals,
    credentials: Credentials,
    agreed: Mutex<HashMap<String, Agreement>>,
}

impl NodeService {
    pub fn new(
        keys: KeyStore,
        events: Vec<Event>,
        institution: Institution,
        policy: Policy,
        records: Records,
        credentials: Credentials,
    ) -> Self {
        let service = Self {
            keys,
            events,
            institution,
            policy,
            state: records.state,
            audit: records.audit,
            approvals: records.approvals,
            credentials,
            agreed: Mutex::new(HashMap::new()),
        };
        service.restore_agreements();
        service
    }

    /// Reloads the agreements of earlier runs, each checked again against today's policy.
    fn restore_agreements(&self) {
        let stored = match self.state.agreements() {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        let mut agreed = self.agreed.lock().expect("agreements lock");
        for (query_id, bytes) in stored {
            match Proposal::decode(bytes.as_slice()) {
                Ok(proposal) => match self.decide(&proposal) {
                    Ok(agreement) => {
                        agreed.insert(query_id, agreement);
                    }
                    Err((reason, detail)) => {
                        tracing::warn!(query = %query_id, %reason, %detail, "an earlier agreement no longer holds under this policy");
                    }
                },
                Err(e) => tracing::error!(query = %query_id, "stored proposal unreadable: {e}"),
            }
        }
    }

    fn agreement(&self, query_id: &str) -> Result<Agreement, Status> {
        self.agreed
            .lock()
            .expect("agreements lock")
            .get(query_id)
            .cloned()
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "query {query_id:?} was not proposed to this node, or it refused it"
                ))
            })
    }

    /// Appends to the audit log; a node that cannot keep its record refuses to go on.
    fn audit(&self, event: &str, fields: serde_json::Value, sync: bool) -> Result<(), Status> {
        self.audit
            .record(event, fields, sync)
            .map_err(|e| Status::internal(format!("audit log: {e}")))
    }

    fn decide(&self, proposal: &Proposal) -> Result<Agreement, (&'static str, String)> {
        let spec = proposal
            .spec
            .as_ref()
            .ok_or(("invalid-query", "no query specification".to_string()))?;
        let template =
            Template::by_id(&spec.template).map_err(|e| ("unknown-template", e.to_string()))?;
        if spec.template_version != template.info().version {
            return Err((
                "unknown-template",
                format!(
                    "{} v{} (this node has v{})",
                    spec.template,
                    spec.template_version,
                    template.info().version
                ),
            ));
        }
        if !self.policy.allowed_templates.is_empty()
            && !self.policy.allowed_templates.contains(&spec.template)
        {
            return Err((
                "template-not-allowed",
                format!("this institution's policy does not allow {}", spec.template),
            ));
        }
        let first = YearMonth::parse(&spec.window_first).ok_or((
            "invalid-window",
            format!("window start {:?} is not YYYY-MM", spec.window_first),
        ))?;
        let window = Window::new(first, spec.window_months.min(u16::MAX as u32) as u16)
            .map_err(|e| ("invalid-window", e.to_string()))?;
        let min_institutions = (spec.min_institutions as usize).max(self.policy.min_institutions);
        if (proposal.institutions as usize) < min_institutions {
            return Err((
                "too-few-institutions",
                format!(
                    "{} institutions asked, this node requires at least {min_institutions}",
                    proposal.institutions
                ),
            ));
        }
        let mut plan = QueryPlan::new(template, window, proposal.institutions as usize)
            .map_err(|e| ("too-many-institutions", e.to_string()))?;
        if self.policy.require_signed_queries {
            let signer = submission::verify(
                &self.credentials.ca_pem,
                &proposal.researcher_certificate,
                spec,
            )
            .map_err(|e| ("unsigned-query", e.to_string()))?;
            if signer.name != proposal.researcher {
                return Err((
                    "unsigned-query",
                    format!(
                        "signed by {}, proposed as {}'s",
                        signer.name, proposal.researcher
                    ),
                ));
            }
        }
        self.policy
            .admits(&proposal.researcher, plan.layout.cells())?;
        if spec.epsilon > 0.0 {
            if spec.epsilon > self.policy.max_epsilon {
                return Err((
                    "epsilon-too-large",
                    format!(
                        "ε = {} asked; this institution's policy allows at most {} per query",
                        spec.epsilon, self.policy.max_epsilon
                    ),
                ));
            }
            plan = plan
                .with_dp(spec.epsilon, spec.delta, spec.min_institutions as usize)
                .map_err(|e| match e {
                    QueryError::Dp(DpError::NotSupported(_)) => ("dp-not-supported", e.to_string()),
                    QueryError::TooManyInstitutions { .. } => {
                        ("too-many-institutions", e.to_string())
                    }
                    _ => ("invalid-dp", e.to_string()),
                })?;
            let dp = plan.dp.as_ref().expect("just planned");
            let mut spent = self
                .state
                .spent(&proposal.researcher)
                .map_err(|e| ("internal", e.to_string()))?;
            if !spent.queries.contains(&proposal.query_id) {
                spent.xi += dp.xi;
                spent.rho += dp.rho;
                if !self.within_budget(&spent) {
                    return Err((
                        "budget-exhausted",
                        self.budget_detail(&proposal.researcher, dp),
                    ));
                }
            }
        } else if self.policy.require_dp {
            return Err((
                "dp-required",
                "this institution's policy takes part only in differentially private queries (give ε)".into(),
            ));
        }
        if spec.publish && !self.policy.allow_publication {
            return Err((
                "publication-not-allowed",
                "this institution's policy does not allow results to be published to MISP"
                    .to_string(),
            ));
        }
        let recipient = if spec.recipient_key.is_empty() {
            if !self.policy.allow_public_results {
                return Err((
                    "public-result-not-allowed",
                    "this institution's policy releases results only to the researcher's key"
                        .to_string(),
                ));
            }
            None
        } else {
            Some(
                PublicKey::from_bytes(&plan.params, &spec.recipient_key)
                    .map_err(|e| ("invalid-recipient-key", e.to_string()))?,
            )
        };
        Ok(Agreement {
            spec: spec.clone(),
            binding: evidence::QueryBinding::new(&proposal.query_id, spec),
            plan,
            min_institutions,
            recipient,
        })
    }
}

impl NodeService {
    /// Manual approval: the operator's decision on a proposal the policy admits, recorded as
    /// pending the first time it is seen.
    fn operator_decision(
        &self,
        proposal: &Proposal,
        agreement: Agreement,
    ) -> Result<Outcome, Status> {
        let spec = &agreement.spec;
        let request = approvals::Request {
            query: proposal.query_id.clone(),
            researcher: proposal.researcher.clone(),
            template: format!("{} v{}", spec.template, spec.template_version),
            window: format!("{} +{} months", spec.window_first, spec.window_months),
            institutions: proposal.institutions,
            release: if spec.recipient_key.is_empty() {
                "public"
            } else {
                "sealed"
            }
            .into(),
            cells: agreement.plan.layout.cells(),
            received_at: approvals::now(),
            status: approvals::Status::Pending,
            by: String::new(),
            reason: String::new(),
        };
        let (stored, new) = tokio::task::block_in_place(|| {
            self.approvals.ask(request, self.policy.approval_timeout_s)
        })
        .map_err(internal)?;
        Ok(match stored.status {
            approvals::Status::Pending => Outcome::Pending { first: new },
            approvals::Status::Approved => Outcome::Agree(Box::new(agreement), Some(stored.by)),
            approvals::Status::Denied => Outcome::Refuse(
                "denied-by-operator",
                if stored.reason.is_empty() {
                    format!("denied by {}", stored.by)
                } else {
                    format!("denied by {}: {}", stored.by, stored.reason)
                },
            ),
            approvals::Status::Expired => Outcome::Refuse("approval-timed-out", stored.reason),
        })
    }

    /// The key this node decrypts with, and how many parties give shares: in all-party mode
    /// its key share `s_i`; in threshold mode (the request names the active parties) its
    /// threshold share weighted for that set, `λ_j^S · t_j`.
    fn decryption_key(
        &self,
        params: &Arc<BfvParameters>,
        req: &DecryptRequest,
    ) -> Result<(Arc<SecretKey>, usize), Status> {
        if req.active_parties.is_empty() {
            let key = self.keys.key(params).map_err(internal)?;
            return Ok((key, req.sharing_parties as usize));
        }
        let stored = self
            .keys
            .threshold(params)
            .map_err(internal)?
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "this node has no threshold key share for {}: run setup in threshold mode",
                    params.name()
                ))
            })?;
        if stored.crs_seed[..] != req.crs_seed[..] {
            return Err(Status::failed_precondition(format!(
                "this node's threshold key share for {} belongs to another setup than the collective key's: run setup again",
                params.name()
            )));
        }
        if stored.key.party().0 != req.party {
            return Err(Status::invalid_argument(format!(
                "this node is party {} of the threshold setup, not {}",
                stored.key.party(),
                req.party
            )));
        }
        let active: Vec<PartyId> = req.active_parties.iter().map(|&p| PartyId(p)).collect();
        let key = stored
            .key
            .for_active_set(&stored.config, &active)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok((Arc::new(key), active.len()))
    }

    /// Charges a DP query to its researcher's budget (once per query); false if it no longer
    /// fits (another query was charged meanwhile).
    fn charge(&self, proposal: &Proposal, agreement: &Agreement) -> Result<bool, StateError> {
        let Some(dp) = &agreement.plan.dp else {
            return Ok(true);
        };
        let charged = self.state.charge(
            &proposal.researcher,
            &proposal.query_id,
            (dp.xi, dp.rho),
            |spent| self.within_budget(spent),
        )?;
        Ok(charged.is_some())
    }

    /// Whether a researcher's spending stays within this node's budget.
    fn within_budget(&self, spent: &Spent) -> bool {
        dp::epsilon_of(spent.xi, spent.rho, self.policy.budget_delta) <= self.policy.epsilon_budget
    }

    fn budget_detail(&self, researcher: &str, asked: &DpPlan) -> String {
        let spent = self.state.spent(researcher).unwrap_or_default();
        format!(
            "{researcher} has spent ε = {:.3} of {} (at δ = {:e}) on this institution's data; this query would cost ε = {}",
            dp::epsilon_of(spent.xi, spent.rho, self.policy.budget_delta),
            self.policy.epsilon_budget,
            self.policy.budget_delta,
            asked.epsilon
        )
    }

    /// This node's recorded contribution to a query, if any.
    fn own_contribution(&self, query_id: &str) -> Result<Option<Contribution>, Status> {
        self.state
            .contribution(query_id)
            .map_err(internal)?
            .map(|bytes| Contribution::decode(bytes.as_slice()).map_err(internal))
            .transpose()
    }

    /// Aggregate verification (DESIGN.md §5, `concord-mhe` `fingerprint`): `aggregate` is the sum
    /// of the committed contributions — at least the agreed minimum, each signed for this
    /// query by a distinct node of the deployment, this node's own among them. Returns the
    /// contributors' names; a refusal gives a machine-readable reason and the detail.
    fn verify_aggregate(
        &self,
        agreement: &Agreement,
        req: &DecryptRequest,
        aggregate_digest: &[u8],
        aggregate: &[Ciphertext],
    ) -> Result<Vec<String>, (&'static str, String)> {
        let refuse = |detail: String| ("aggregate-not-verified", detail);
        let ca = &self.credentials.ca_pem;
        if req.commitments.len() < agreement.min_institutions {
            return Err((
                "too-few-contributions",
                format!(
                    "{} contributions presented; this node releases aggregates of at least {} institutions",
                    req.commitments.len(),
                    agreement.min_institutions
                ),
            ));
        }
        let mut names = Vec::new();
        for commitment in &req.commitments {
            let signer = agreement
                .binding
                .verify_commitment(ca, commitment)
                .map_err(|e| refuse(format!("a contribution's commitment: {e}")))?;
            if names.contains(&signer.name) {
                return Err(refuse(format!(
                    "{} appears twice among the contributions",
                    signer.name
                )));
            }
            names.push(signer.name);
        }
        let own = self
            .own_contribution(&req.query_id)
            .map_err(|e| refuse(e.message().to_owned()))?
            .and_then(|c| c.commitment)
            .ok_or_else(|| refuse("this node has not contributed to the query".into()))?;
        if !req
            .commitments
            .iter()
            .any(|c| c.digest == own.digest && c.certificate == own.certificate)
        {
            return Err(refuse(
                "this node's own contribution is not among those presented".into(),
            ));
        }
        if req.fingerprints.len() != req.commitments.len() {
            return Err(refuse(format!(
                "{} fingerprints for {} contributions",
                req.fingerprints.len(),
                req.commitments.len()
            )));
        }
        let seed = agreement
            .binding
            .challenge_seed(aggregate_digest, &req.commitments);
        for (commitment, signed) in req.commitments.iter().zip(&req.fingerprints) {
            agreement
                .binding
                .verify_fingerprint(ca, &seed, commitment, signed)
                .map_err(|e| refuse(format!("a fingerprint: {e}")))?;
        }
        let values: Vec<&[u64]> = req
            .fingerprints
            .iter()
            .map(|f| f.values.as_slice())
            .collect();
        fingerprint::check(aggregate, &seed, &values).map_err(|e| refuse(e.to_string()))?;
        Ok(names)
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

fn refused_twice(query_id: &str) -> Status {
    Status::already_exists(format!(
        "this node already gave decryption shares for another aggregate of query {query_id:?}"
    ))
}

/// The shares recorded for this very request, sent again.
fn again(query_id: &str, shares: &[u8]) -> Result<Response<Replies<DecryptShares>>, Status> {
    let reply = DecryptShares::decode(shares).map_err(internal)?;
    tracing::info!(query = %query_id, "sent the recorded decryption shares again");
    Ok(Response::new(replies(reply)))
}

fn parameters(name: &str) -> Result<std::sync::Arc<BfvParameters>, Status> {
    let spec = params::spec_by_name(name)
        .ok_or_else(|| Status::invalid_argument(format!("unknown parameter set {name:?}")))?;
    BfvParameters::new(spec).map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl Node for NodeService {
    /// CKG: `p_i = −s_i·a + e_i` under this node's persistent key share for the set.
    async fn setup(&self, request: Request<SetupRequest>) -> Result<Response<SetupShare>, Status> {
        let caller = require_role(&request, Role::Coordinator)?;
        let req = request.into_inner();
        let params = parameters(&req.parameter_set)?;
        let seed: [u8; 32] = req.crs_seed.as_slice().try_into().map_err(|_| {
            Status::invalid_argument(format!(
                "crs_seed must be 32 bytes, got {}",
                req.crs_seed.len()
            ))
        })?;
        if req.party == 0 {
            return Err(Status::invalid_argument("party numbers start at 1"));
        }
        let key = self
            .keys
            .key(&params)
            .map_err(|e| Status::internal(e.to_string()))?;
        let share = PublicKeyGen::new(&params, &CommonReferenceString::from_seed(seed))
            .share(&key, PartyId(req.party))
            .map_err(|e| Status::internal(e.to_string()))?;
        tracing::info!(coordinator = %caller.name, set = params.name(), party = req.party, "gave a CKG share");
        Ok(Response::new(SetupShare {
            share: share.to_bytes(),
        }))
    }

    async fn exchange_key_of(
        &self,
        request: Request<ExchangeKeyRequest>,
    ) -> Result<Response<ExchangeKey>, Status> {
        require_role(&request, Role::Coordinator)?;
        let credentials = &self.credentials;
        let published = self
            .keys
            .exchange_secret()
            .map_err(internal)?
            .publish(&credentials.key_pem, &credentials.certificate_der)
            .map_err(internal)?;
        Ok(Response::new(published))
    }

    type ReshareStream = Replies<Resharings>;

    /// Threshold setup, round one: `f_i(α_j)` for every party `j`, sealed to `j`.
    async fn reshare(
        &self,
        request: Request<ReshareRequest>,
    ) -> Result<Response<Self::ReshareStream>, Status> {
        require_role(&request, Role::Coordinator)?;
        let setup = request
            .into_inner()
            .setup
            .ok_or_else(|| Status::invalid_argument("no threshold setup"))?;
        let credentials = &self.credentials;
        let checked = threshold::check(&credentials.ca_pem, &credentials.certificate_der, &setup)?;
        let key = self.keys.key(&checked.params).map_err(internal)?;
        let sealed = reshare(&key, checked.me, &checked.config)
            .map_err(internal)?
            .iter()
            .map(|r| {
                exchange::seal(
                    &credentials.key_pem,
                    &credentials.certificate_der,
                    (r.from.0, r.to.0),
                    &checked.keys[&r.to.0],
                    &checked.context,
                    &r.to_bytes(),
                )
                .map_err(internal)
            })
            .collect::<Result<Vec<_>, _>>()?;
        tracing::info!(
            set = checked.params.name(),
            threshold = setup.threshold,
            parties = setup.parties.len(),
            "re-shared the key share"
        );
        Ok(Response::new(replies(Resharings { sealed })))
    }

    /// Threshold setup, round two: `t_j = Σ_i f_i(α_j)` from the resharings sealed to this node,
    /// one from every party; kept beside the key share.
    async fn combine(
        &self,
        request: Request<Streaming<CombineRequest>>,
    ) -> Result<Response<CombineReply>, Status> {
        require_role(&request, Role::Coordinator)?;
        let req = collect(request.into_inner(), |first| {
            Ok(first.setup.as_ref().map_or(0, |s| s.parties.len()))
        })
        .await?;
        let setup = req
            .setup
            .ok_or_else(|| Status::invalid_argument("no threshold setup"))?;
        let credentials = &self.credentials;
        let checked = threshold::check(&credentials.ca_pem, &credentials.certificate_der, &setup)?;
        let mine = self.keys.exchange_secret().map_err(internal)?;
        let mut received = Vec::new();
        for sealed in &req.sealed {
            let sender = checked.keys.get(&sealed.from).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "a resharing from party {}, not in the setup",
                    sealed.from
                ))
            })?;
            if sealed.to != checked.me.0 || sealed.certificate != sender.certificate {
                return Err(Status::invalid_argument(format!(
                    "a resharing said to be from party {} to {} is not from that party to this node",
                    sealed.from, sealed.to
                )));
            }
            let (_, secret) = exchange::open(&credentials.ca_pem, &mine, &checked.context, sealed)
                .map_err(|e| {
                    Status::invalid_argument(format!("resharing from party {}: {e}", sealed.from))
                })?;
            let resharing = Resharing::from_bytes(&checked.params, &secret)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            if resharing.from.0 != sealed.from || resharing.to != checked.me {
                return Err(Status::invalid_argument(
                    "a resharing's parties do not match its envelope",
                ));
            }
            received.push(resharing);
        }
        let key =
            ThresholdSecretKey::combine(&checked.params, checked.me, &checked.config, &received)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.keys
            .put_threshold(
                &checked.params,
                &StoredThreshold {
                    crs_seed: checked.crs_seed,
                    config: checked.config,
                    key,
                },
            )
            .map_err(internal)?;
        tracing::info!(
            set = checked.params.name(),
            threshold = setup.threshold,
            party = checked.me.0,
            "kept a threshold key share"
        );
        Ok(Response::new(CombineReply {}))
    }

    async fn propose(&self, request: Request<Proposal>) -> Result<Response<Decision>, Status> {
        require_role(&request, Role::Coordinator)?;
        let proposal = request.into_inner();
        let encoded = proposal.encode_to_vec();
        let earlier = self.state.agreement(&proposal.query_id).map_err(internal)?;
        let decided = match earlier {
            // a query id names one query for good: a coordinator resuming proposes the same
            // again; anything else under that id is a replay
            Some(earlier) if earlier != encoded => Err((
                "query-id-reused",
                format!(
                    "this node agreed to another query under the id {:?}",
                    proposal.query_id
                ),
            )),
            _ => self.decide(&proposal),
        };
        let outcome = match decided {
            Err((reason, detail)) => Outcome::Refuse(reason, detail),
            Ok(agreement) if self.policy.approval == Approval::Manual => {
                self.operator_decision(&proposal, agreement)?
            }
            Ok(agreement) => Outcome::Agree(Box::new(agreement), None),
        };
        let (decision, approved_by, log) = match outcome {
            Outcome::Agree(agreement, approved_by)
                if !self.charge(&proposal, &agreement).map_err(internal)? =>
            {
                let dp = agreement
                    .plan
                    .dp
                    .as_ref()
                    .expect("only DP queries are charged");
                (
                    Decision {
                        agree: false,
                        reason: "budget-exhausted".into(),
                        detail: self.budget_detail(&proposal.researcher, dp),
                        ..Default::default()
                    },
                    approved_by,
                    true,
                )
            }
            Outcome::Agree(agreement, approved_by) => {
                self.state
                    .agree(&proposal.query_id, &encoded)
                    .map_err(|e| Status::internal(e.to_string()))?;
                self.agreed
                    .lock()
                    .expect("agreements lock")
                    .insert(proposal.query_id.clone(), *agreement);
                (
                    Decision {
                        agree: true,
                        ..Default::default()
                    },
                    approved_by,
                    true,
                )
            }
            Outcome::Pending { first } => (
                Decision {
                    pending: true,
                    reason: "awaiting-approval".into(),
                    detail: "waiting for the approval of this institution's operator".into(),
                    ..Default::default()
                },
                None,
                first,
            ),
            Outcome::Refuse(reason, detail) => (
                Decision {
                    agree: false,
                    reason: reason.into(),
                    detail,
                    ..Default::default()
                },
                None,
                true,
            ),
        };
        if !log {
            return Ok(Response::new(decision));
        }
        tracing::info!(query = %proposal.query_id, agree = decision.agree, pending = decision.pending, reason = %decision.reason, "decided on a proposal");
        let spec = proposal.spec.clone().unwrap_or_default();
        self.audit(
            "proposal",
            json!({
                "query": proposal.query_id,
                "researcher": proposal.researcher,
                "template": spec.template,
                "template_version": spec.template_version,
                "window": format!("{} +{}", spec.window_first, spec.window_months),
                "institutions": proposal.institutions,
                "release": if spec.recipient_key.is_empty() { "public" } else { "sealed" },
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

    type ContributeStream = Replies<Contribution>;

    /// The node's statistic, encrypted, with its signed commitment — computed once per query
    /// and recorded before it leaves; asked again, the node sends the recorded one.
    async fn contribute(
        &self,
        request: Request<ContributeRequest>,
    ) -> Result<Response<Self::ContributeStream>, Status> {
        require_role(&request, Role::Coordinator)?;
        let req = request.into_inner();
        let agreement = self.agreement(&req.query_id)?;
        if let Some(recorded) = self.own_contribution(&req.query_id)? {
            tracing::info!(query = %req.query_id, "sent the recorded contribution again");
            return Ok(Response::new(replies(recorded)));
        }
        let plan = &agreement.plan;
        let key = PublicKey::from_bytes(&plan.params, &req.collective_key)
            .map_err(|e| Status::invalid_argument(format!("collective key: {e}")))?;
        let statistic = plan
            .template
            .compute(&plan.window, &self.institution, &self.events)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let ciphertexts: Vec<Vec<u8>> = plan
            .encrypt(&key, &statistic)
            .map_err(internal)?
            .iter()
            .map(Ciphertext::to_bytes)
            .collect();
        let digest = evidence::digest(&ciphertexts);
        let credentials = &self.credentials;
        let commitment = agreement
            .binding
            .commit(&credentials.key_pem, &credentials.certificate_der, digest)
            .map_err(internal)?;
        let contribution = Contribution {
            ciphertexts,
            events_covered: statistic.events_in_window as u64,
            commitment: Some(commitment),
        };
        // recorded first; if another call recorded one meanwhile, that one is sent
        let recorded = self
            .state
            .contribute(&req.query_id, &contribution.encode_to_vec())
            .map_err(internal)?;
        let contribution = Contribution::decode(recorded.as_slice()).map_err(internal)?;
        tracing::info!(query = %req.query_id, events = statistic.events_in_window, clipped = statistic.clipped_cells, "contributed");
        self.audit(
            "contribution",
            json!({
                "query": req.query_id,
                "events_covered": contribution.events_covered,
                "clipped_cells": statistic.clipped_cells,
                "ciphertexts": contribution.ciphertexts.len(),
                "digest": hex(&contribution.commitment.as_ref().map(|c| c.digest.clone()).unwrap_or_default()),
            }),
            false,
        )?;
        Ok(Response::new(replies(contribution)))
    }

    /// Round two of aggregate verification: this node's contribution at the challenge points.
    async fn fingerprint(
        &self,
        request: Request<FingerprintRequest>,
    ) -> Result<Response<SignedFingerprint>, Status> {
        require_role(&request, Role::Coordinator)?;
        let req = request.into_inner();
        let agreement = self.agreement(&req.query_id)?;
        let own = self.own_contribution(&req.query_id)?.ok_or_else(|| {
            Status::failed_precondition(format!(
                "this node has not contributed to query {:?}",
                req.query_id
            ))
        })?;
        let params = &agreement.plan.params;
        let cts = own
            .ciphertexts
            .iter()
            .map(|b| Ciphertext::from_bytes(params, b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;
        let binding = &agreement.binding;
        let seed = binding.challenge_seed(&req.aggregate_digest, &req.commitments);
        let values = fingerprint::fingerprint(&cts, &seed).map_err(internal)?;
        let signed = binding
            .sign_fingerprint(&self.credentials.key_pem, &seed, values)
            .map_err(internal)?;
        Ok(Response::new(signed))
    }

    type DecryptStream = Replies<DecryptShares>;

    async fn decrypt(
        &self,
        request: Request<Streaming<DecryptRequest>>,
    ) -> Result<Response<Self::DecryptStream>, Status> {
        require_role(&request, Role::Coordinator)?;
        // the aggregate, at most as many ciphertexts as the agreed query has
        let req = collect(request.into_inner(), |first| {
            Ok(self.agreement(&first.query_id)?.plan.ciphertexts())
        })
        .await?;
        let agreement = self.agreement(&req.query_id)?;
        // what identifies the request: everything but the fingerprints' signatures (ECDSA
        // signatures are randomized, so a resuming coordinator gets fresh ones)
        let mut identity = req.clone();
        identity
            .fingerprints
            .iter_mut()
            .for_each(|f| f.signature.clear());
        let digest: [u8; 32] = Sha256::digest(identity.encode_to_vec()).into();
        match self
            .state
            .released(&req.query_id, &digest)
            .map_err(internal)?
        {
            Released::Never => {}
            Released::Same(shares) => return again(&req.query_id, &shares),
            Released::Other => {
                self.audit(
                    "release-refused",
                    json!({"query": req.query_id, "reason": "another aggregate of a released query"}),
                    true,
                )?;
                return Err(refused_twice(&req.query_id));
            }
        }
        if req.party == 0 || req.sharing_parties == 0 || req.key_parties == 0 {
            return Err(Status::invalid_argument("party counts start at 1"));
        }
        let params = &agreement.plan.params;
        let cts = req
            .ciphertexts
            .iter()
            .map(|b| Ciphertext::from_bytes(params, b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::invalid_argument(format!("aggregate: {e}")))?;
        if cts.len() != agreement.plan.ciphertexts() {
            return Err(Status::invalid_argument(format!(
                "{} ciphertexts where the query has {}",
                cts.len(),
                agreement.plan.ciphertexts()
            )));
        }
        let aggregate_digest = evidence::digest(&req.ciphertexts);
        let verified = self.verify_aggregate(&agreement, &req, &aggregate_digest, &cts);
        self.audit(
            "verification",
            match &verified {
                Ok(contributors) => json!({
                    "query": req.query_id,
                    "aggregate": hex(&aggregate_digest),
                    "verified": true,
                    "contributors": contributors,
                }),
                Err((reason, detail)) => json!({
                    "query": req.query_id,
                    "aggregate": hex(&aggregate_digest),
                    "verified": false,
                    "reason": reason,
                    "detail": detail,
                }),
            },
            true,
        )?;
        let contributors = verified.map_err(|(reason, detail)| {
            tracing::warn!(query = %req.query_id, %reason, %detail, "refused to decrypt an aggregate");
            Status::failed_precondition(format!("{reason}: {detail}"))
        })?;
        let noise = NoiseEstimate::aggregate(params, req.key_parties as usize, contributors.len());
        let (key, sharing) = self.decryption_key(params, &req)?;
        let plan = match &agreement.recipient {
            Some(_) => SmudgingPlan::for_key_switch(params, noise, sharing),
            None => SmudgingPlan::for_decryption(params, noise, sharing),
        }
        .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let party = PartyId(req.party);
        // a key switch to the recipient the node agreed to (PCKS), or a joint decryption (CKS)
        let shares = cts
            .iter()
            .map(|ct| {
                match &agreement.recipient {
                    Some(recipient) => PublicKeySwitch::new(ct, recipient, plan)
                        .and_then(|pcks| pcks.share(&key, party))
                        .map(|s| s.to_bytes()),
                    None => CollectiveDecryption::new(ct, plan)
                        .and_then(|cks| cks.share(&key, party))
                        .map(|s| s.to_bytes()),
                }
                .map_err(|e| Status::invalid_argument(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let reply = DecryptShares { shares };
        self.audit(
            "release",
            json!({
                "query": req.query_id,
                "kind": if agreement.recipient.is_some() { "key switch to the researcher (PCKS)" } else { "joint decryption, public (CKS)" },
                "shares": reply.shares.len(),
                "contributors": contributors,
                "smudging_lambda": plan.lambda,
            }),
            true,
        )?;
        // recorded durably before anything leaves the node
        match self
            .state
            .release(&req.query_id, &digest, &reply.encode_to_vec())
            .map_err(internal)?
        {
            Released::Never => {}
            Released::Same(shares) => return again(&req.query_id, &shares),
            Released::Other => return Err(refused_twice(&req.query_id)),
        }
        tracing::info!(query = %req.query_id, shares = reply.shares.len(), lambda = plan.lambda, "gave decryption shares");
        Ok(Response::new(replies(reply)))
    }
}
