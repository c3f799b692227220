//! Evaluation keys at the node, for a multiplicative deployment after its collective key is
//! pinned: the relinearization key by RKG in two rounds (PETS 2021 §IV-B; `concord-mhe`
//! `evaluation_keys`), and the binning key of the overlap queries, agreed node to node
//! (`concord-stats` `overlap`).
//!
//! What the node trusts of the coordinator: nothing. Round one answers only a deployment this
//! node pinned (the current one for its set, all-party mode), with its share derived from its
//! key share and the CRS, so asking again gives the same bytes. Round two multiplies the node's
//! secrets into the round-one sum, so a crafted sum (`h_0 = 1`, `h_1 = 0`) would return
//! `s_i + e`: the node never takes a sum, it takes every party's signed round-one share —
//! exactly one per party, signed by that party's node certificate for this deployment, its
//! own exactly as it gives it — and adds them itself. Every party's share is deterministic, so
//! only one sum can pass, and the round-two share (derived from that sum) is one. The key is
//! pinned the same way: from every signed share of both rounds, recomputed.
//!
//! The binning key: in round one each node seals a secret `r_i` (a PRF of its key share and
//! the deployment) to every party's exchange key (HPKE, signed, bound to the deployment and to
//! sender and recipient); in round two each node opens the `N` secrets sealed to it, one from
//! every party, and keeps `K = SHA-256(label ‖ deployment ‖ r_1 ‖ … ‖ r_N)`. The coordinator
//! relays sealed bytes it cannot open; it could withhold one, and the round fails. A node
//! colluding with the coordinator knows `K`, as it knows its own data: `K` keeps the bins
//! unknown to outsiders, and the per-query key `HMAC(K, query id)` makes every query bin afresh.

use crate::admission::internal;
use crate::audit::hex;
use crate::keygen::PinnedDeployment;
use crate::service::NodeService;
use concord_api::deployment::{self, DeploymentError};
use concord_api::exchange::{self, verify_exchange_key};
use concord_api::lifecycle::{Refusal, RefusalCode};
use concord_api::v1::{
    ExchangeKey, PinnedKey, RelinearizeRequest, RelinearizeShare, SignedKeyShare,
};
use concord_bfv::{BfvParameters, SecretKey};
use concord_mhe::{
    CommonReferenceString, EvaluationKeyAggregate, EvaluationKeyShare, PartyId,
    RelinearizationEphemeral, RelinearizationKeyGen,
};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use tonic::Status;

const SECRET_LABEL: &[u8] = b"concord/binning-secret/v1\0";
const SEAL_LABEL: &[u8] = b"concord/binning-seal/v1\0";
const KEY_LABEL: &[u8] = b"concord/binning-key/v1\0";

/// An overlap query on a deployment whose evaluation-key setup did not run here.
fn not_set_up(what: &str) -> Refusal {
    Refusal::new(
        RefusalCode::DeploymentNotPinned,
        format!("the deployment has no {what} at this node: its evaluation-key setup has not run"),
    )
}

fn bad(what: String) -> Status {
    Status::invalid_argument(what)
}

/// A multiplicative deployment this node pinned and serves now, with what RKG needs.
struct Pinned {
    deployment: PinnedDeployment,
    params: Arc<BfvParameters>,
    gen: RelinearizationKeyGen,
    key: Arc<SecretKey>,
}

impl NodeService {
    /// The deployment a request names by digest, if this node pinned it.
    fn named(&self, digest: &[u8]) -> Result<PinnedDeployment, Status> {
        let digest: [u8; 32] = digest.try_into().map_err(|_| {
            bad(format!(
                "{} bytes where a deployment digest goes",
                digest.len()
            ))
        })?;
        let deployment = self.pinned_deployment(&digest)?.ok_or_else(|| {
            Status::failed_precondition("this node has not pinned the deployment named")
        })?;
        Ok(deployment)
    }

    fn multiplicative(&self, digest: &[u8]) -> Result<Pinned, Status> {
        let deployment = self.named(digest)?;
        let digest = deployment.digest;
        let params = deployment.params()?;
        if self.current_deployment(&params)?.map(|d| d.digest) != Some(digest) {
            return Err(Status::failed_precondition(format!(
                "the deployment named is no longer the one pinned for {}",
                params.name()
            )));
        }
        if !params.is_multiplicative() {
            return Err(bad(format!(
                "{} is additive: it has no relinearization key",
                params.name()
            )));
        }
        if deployment.threshold().is_some() {
            return Err(bad(
                "evaluation keys are made in all-party mode only; this deployment has a threshold"
                    .into(),
            ));
        }
        let seed: [u8; 32] = deployment.deployment.crs_seed[..]
            .try_into()
            .map_err(|_| internal("a pinned CRS seed of another length"))?;
        let gen = RelinearizationKeyGen::new(&params, &CommonReferenceString::from_seed(seed))
            .map_err(internal)?;
        let key = self.keys.key(&params).map_err(internal)?;
        Ok(Pinned {
            deployment,
            params,
            gen,
            key,
        })
    }

    /// The parties of the multiplicative deployment `digest` names (what bounds a stream of
    /// its shares).
    pub(crate) fn evaluation_parties(&self, digest: &[u8]) -> Result<usize, Status> {
        Ok(self.named(digest)?.parties())
    }

    /// This node's binning secret `r_i` for a deployment: a PRF of its key share.
    fn binning_secret(pinned: &Pinned) -> [u8; 32] {
        let key = pinned.key.to_bytes();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(SECRET_LABEL);
        mac.update(&pinned.deployment.digest);
        mac.finalize().into_bytes().into()
    }

    fn seal_context(pinned: &Pinned) -> Vec<u8> {
        [SEAL_LABEL, &pinned.deployment.digest[..]].concat()
    }

    /// Checks `signed` as party `number`'s share of `pinned` in `round` and parses it.
    fn evaluation_share(
        &self,
        pinned: &Pinned,
        round: &str,
        number: u32,
        signed: &SignedKeyShare,
    ) -> Result<EvaluationKeyShare, Status> {
        let parties = &pinned.deployment.deployment.parties;
        let name = &parties
            .iter()
            .find(|p| p.number == number)
            .ok_or_else(|| bad(format!("no party {number}")))?
            .name;
        deployment::verify_key_share(
            &self.credentials.ca_pem,
            &pinned.deployment.digest,
            name,
            signed,
        )
        .map_err(|e: DeploymentError| bad(format!("{name}'s {round} share: {e}")))?;
        let share = EvaluationKeyShare::from_bytes(&pinned.params, &signed.share)
            .map_err(|e| bad(format!("{name}'s {round} share: {e}")))?;
        if share.party != PartyId(number) {
            return Err(bad(format!(
                "{name}'s {round} share is for party {}, not {number}",
                share.party
            )));
        }
        Ok(share)
    }

    /// The round-one sum from every party's signed share (in party order), this node's own
    /// exactly as it gives it; with this node's ephemeral secret of round one.
    fn round_one_sum(
        &self,
        pinned: &Pinned,
        shares: &[SignedKeyShare],
    ) -> Result<(EvaluationKeyAggregate, RelinearizationEphemeral), Status> {
        let parties = &pinned.deployment.deployment.parties;
        if shares.len() < parties.len() {
            return Err(bad(format!(
                "{} round-one shares for {} parties",
                shares.len(),
                parties.len()
            )));
        }
        let (ephemeral, own) = pinned
            .gen
            .round_one(&pinned.key, pinned.deployment.me)
            .map_err(internal)?;
        let mut sum = pinned.gen.round_one_aggregator();
        for (party, signed) in parties.iter().zip(shares) {
            let share = self.evaluation_share(pinned, "round-one", party.number, signed)?;
            if share.party == pinned.deployment.me && share != own {
                return Err(bad(
                    "the round-one share presented as this node's is not the one it gave".into(),
                ));
            }
            sum.add(&share)
                .map_err(|e| bad(format!("{}'s round-one share: {e}", party.name)))?;
        }
        Ok((sum, ephemeral))
    }

    fn sign(&self, pinned: &Pinned, share: &EvaluationKeyShare) -> Result<SignedKeyShare, Status> {
        deployment::sign_key_share(
            &self.credentials.key_pem,
            &self.credentials.certificate_der,
            &pinned.deployment.digest,
            share.to_bytes(),
        )
        .map_err(internal)
    }

    /// RKG round one: this node's signed share, and its binning secret sealed to every party
    /// whose exchange key (signed by that party's certificate) the request carries.
    pub(crate) fn relinearize_one(
        &self,
        req: &RelinearizeRequest,
    ) -> Result<RelinearizeShare, Status> {
        let pinned = self.multiplicative(&req.deployment)?;
        let parties = &pinned.deployment.deployment.parties;
        if req.parties.len() != parties.len() {
            return Err(bad(format!(
                "{} exchange keys for {} parties",
                req.parties.len(),
                parties.len()
            )));
        }
        let mut keys: BTreeMap<u32, &ExchangeKey> = BTreeMap::new();
        for (given, party) in req.parties.iter().zip(parties) {
            let key = given
                .key
                .as_ref()
                .ok_or_else(|| bad(format!("party {} has no exchange key", given.party)))?;
            let who = verify_exchange_key(&self.credentials.ca_pem, key)
                .map_err(|e| bad(format!("party {}'s exchange key: {e}", given.party)))?;
            if given.party != party.number || who.name != party.name {
                return Err(bad(format!(
                    "exchange key {} ({}) where the deployment has party {} ({})",
                    given.party, who.name, party.number, party.name
                )));
            }
            keys.insert(party.number, key);
        }
        let (_, share) = pinned
            .gen
            .round_one(&pinned.key, pinned.deployment.me)
            .map_err(internal)?;
        let signed = self.sign(&pinned, &share)?;
        let secret = zeroize::Zeroizing::new(Self::binning_secret(&pinned));
        let context = Self::seal_context(&pinned);
        let me = pinned.deployment.me.0;
        let sealed = keys
            .iter()
            .map(|(&to, key)| {
                exchange::seal(
                    &self.credentials.key_pem,
                    &self.credentials.certificate_der,
                    (me, to),
                    key,
                    &context,
                    &secret[..],
                )
                .map_err(internal)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.audit(
            "key-generation",
            json!({
                "protocol": "rkg-1",
                "set": pinned.params.name(),
                "deployment": hex(&pinned.deployment.digest),
                "party": me,
                "share": hex(&Sha256::digest(&signed.share)),
                "binning-secret-sealed-to": keys.keys().collect::<Vec<_>>(),
            }),
            true,
        )?;
        Ok(RelinearizeShare {
            share: Some(signed),
            sealed,
        })
    }

    /// RKG round two: from every party's signed round-one share, the sum recomputed here and
    /// this node's signed round-two share; from the binning secrets sealed to it, one from
    /// every party, the binning key, kept.
    pub(crate) fn relinearize_two(
        &self,
        req: &RelinearizeRequest,
    ) -> Result<RelinearizeShare, Status> {
        let pinned = self.multiplicative(&req.deployment)?;
        let parties = &pinned.deployment.deployment.parties;
        if req.shares.len() != parties.len() {
            return Err(bad(format!(
                "{} round-one shares for {} parties",
                req.shares.len(),
                parties.len()
            )));
        }
        let (sum, ephemeral) = self.round_one_sum(&pinned, &req.shares)?;
        // the binning secrets: exactly one from every party, to this node
        let me = pinned.deployment.me.0;
        let context = Self::seal_context(&pinned);
        let mine = self.keys.exchange_secret().map_err(internal)?;
        let mut secrets: BTreeMap<u32, zeroize::Zeroizing<Vec<u8>>> = BTreeMap::new();
        for sealed in &req.sealed {
            let party = parties
                .iter()
                .find(|p| p.number == sealed.from)
                .ok_or_else(|| bad(format!("a binning secret from party {}", sealed.from)))?;
            if sealed.to != me {
                return Err(bad(format!(
                    "a binning secret sealed to party {}, not this node",
                    sealed.to
                )));
            }
            let (sender, secret) =
                exchange::open(&self.credentials.ca_pem, &mine, &context, sealed)
                    .map_err(|e| bad(format!("binning secret of party {}: {e}", sealed.from)))?;
            if sender.name != party.name || secret.len() != 32 {
                return Err(bad(format!(
                    "the binning secret said to be from {} is not one from it",
                    party.name
                )));
            }
            if secrets.insert(sealed.from, secret).is_some() {
                return Err(bad(format!(
                    "two binning secrets from party {}",
                    sealed.from
                )));
            }
        }
        if secrets.len() != parties.len() {
            return Err(bad(format!(
                "binning secrets from {} of {} parties",
                secrets.len(),
                parties.len()
            )));
        }
        if secrets[&me][..] != Self::binning_secret(&pinned)[..] {
            return Err(bad(
                "the binning secret presented as this node's is not the one it sealed".into(),
            ));
        }
        let mut h = Sha256::new();
        h.update(KEY_LABEL);
        h.update(pinned.deployment.digest);
        for secret in secrets.values() {
            h.update(&secret[..]);
        }
        let binning = zeroize::Zeroizing::new(<[u8; 32]>::from(h.finalize()));
        self.keys
            .put_binning(&pinned.params, &pinned.deployment.digest, &binning)
            .map_err(internal)?;
        let share = pinned
            .gen
            .round_two(&pinned.key, &ephemeral, &sum, pinned.deployment.me)
            .map_err(internal)?;
        let signed = self.sign(&pinned, &share)?;
        self.audit(
            "key-generation",
            json!({
                "protocol": "rkg-2",
                "set": pinned.params.name(),
                "deployment": hex(&pinned.deployment.digest),
                "party": me,
                "round-one": hex(&sum.digest()),
                "share": hex(&Sha256::digest(&signed.share)),
                "binning-key": "kept",
            }),
            true,
        )?;
        Ok(RelinearizeShare {
            share: Some(signed),
            sealed: Vec::new(),
        })
    }

    /// Pins the relinearization key recomputed from every party's signed shares of both rounds.
    pub(crate) fn pin_relinearization(
        &self,
        req: &RelinearizeRequest,
    ) -> Result<PinnedKey, Status> {
        let pinned = self.multiplicative(&req.deployment)?;
        let parties = &pinned.deployment.deployment.parties;
        let n = parties.len();
        if req.shares.len() != 2 * n {
            return Err(bad(format!(
                "{} shares for two rounds of {n} parties",
                req.shares.len()
            )));
        }
        if self
            .keys
            .binning(&pinned.params, &pinned.deployment.digest)
            .map_err(internal)?
            .is_none()
        {
            return Err(Status::failed_precondition(
                "round two has not run here for this deployment",
            ));
        }
        let (one, two) = req.shares.split_at(n);
        let (sum, _) = self.round_one_sum(&pinned, one)?;
        let mut second = pinned.gen.round_two_aggregator(&sum).map_err(internal)?;
        for (party, signed) in parties.iter().zip(two) {
            let share = self.evaluation_share(&pinned, "round-two", party.number, signed)?;
            second
                .add(&share)
                .map_err(|e| bad(format!("{}'s round-two share: {e}", party.name)))?;
        }
        let numbers: Vec<PartyId> = parties.iter().map(|p| PartyId(p.number)).collect();
        let rlk = pinned
            .gen
            .finish(&sum, &second, &numbers)
            .map_err(|e| bad(e.to_string()))?;
        let bytes = rlk.to_bytes();
        let key_digest: [u8; 32] = Sha256::digest(&bytes).into();
        self.state
            .pin_relinearization_key(&pinned.deployment.digest, &bytes)
            .map_err(internal)?;
        self.audit(
            "evaluation-key-pinned",
            json!({
                "set": pinned.params.name(),
                "deployment": hex(&pinned.deployment.digest),
                "relinearization-key": hex(&key_digest),
                "party": pinned.deployment.me.0,
            }),
            true,
        )?;
        tracing::info!(
            set = pinned.params.name(),
            parties = n,
            "pinned the relinearization key"
        );
        Ok(PinnedKey {
            key_digest: key_digest.to_vec(),
        })
    }

    /// What an overlap query needs of its deployment, both made at its setup: refused
    /// without them (checked at the proposal without reading the key itself).
    pub(crate) fn check_overlap_keys(&self, deployment: &PinnedDeployment) -> Result<(), Refusal> {
        self.binning_key(deployment)?;
        let pinned = self
            .state
            .has_relinearization_key(&deployment.digest)
            .map_err(|e| Refusal::new(RefusalCode::Internal, e.to_string()))?;
        pinned
            .then_some(())
            .ok_or_else(|| not_set_up("relinearization key"))
    }

    /// The overlap queries' binning key of a deployment (contribution).
    pub(crate) fn binning_key(
        &self,
        deployment: &PinnedDeployment,
    ) -> Result<concord_stats::overlap::BinningKey, Refusal> {
        let internal = |e: String| Refusal::new(RefusalCode::Internal, e);
        let params = deployment
            .params()
            .map_err(|e| internal(e.message().to_owned()))?;
        self.keys
            .binning(&params, &deployment.digest)
            .map_err(|e| internal(e.to_string()))?
            .ok_or_else(|| not_set_up("binning key"))
    }

    /// The relinearization key of a deployment, parsed (release of an overlap query).
    pub(crate) fn overlap_relinearization_key(
        &self,
        deployment: &PinnedDeployment,
    ) -> Result<concord_bfv::RelinearizationKey, Refusal> {
        self.relinearization_key(deployment)
            .map_err(|e| Refusal::new(RefusalCode::Internal, e.message().to_owned()))?
            .ok_or_else(|| not_set_up("relinearization key"))
    }

    /// The relinearization key pinned for a deployment, if its setup made one.
    pub(crate) fn relinearization_key(
        &self,
        deployment: &PinnedDeployment,
    ) -> Result<Option<concord_bfv::RelinearizationKey>, Status> {
        let Some(bytes) = self
            .state
            .relinearization_key(&deployment.digest)
            .map_err(internal)?
        else {
            return Ok(None);
        };
        let params = deployment.params()?;
        concord_bfv::RelinearizationKey::from_bytes(&params, &bytes)
            .map(Some)
            .map_err(internal)
    }
}
