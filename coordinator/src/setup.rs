//! Setup, per parameter set: the deployment (every node, numbered `1..N`, and the threshold),
//! the collective public key by CKG across every node (PETS 2021 §IV-A) — round one, each
//! node's share signed for the deployment; round two, every signed share relayed to every node,
//! which recomputes the key and pins it (concord-api `deployment`) — then, in threshold mode, the
//! threshold key shares, relayed between the nodes (exchange keys, resharings sealed node to
//! node, combination). The key, its deployment and the parties it was made for are stored, so
//! queries after a restart use the same key.

use crate::pool::{next, Step};
use crate::store::StoredKey;
use crate::{Coordinator, CoordinatorError};
use concord_api::chunks::{collect, stream};
use concord_api::v1::{
    CombineRequest, Deployment, ExchangeKeyRequest, Party, PinRequest, RelinearizeRequest,
    ReshareRequest, SealedSecret, SetupRequest, SignedKeyShare, ThresholdParty, ThresholdSetup,
};
use concord_bfv::{BfvParameters, PublicKey, RelinearizationKey};
use concord_mhe::{
    CommonReferenceString, EvaluationKeyShare, PartyId, Protocol, PublicKeyGen, PublicKeyShare,
    RelinearizationKeyGen, ThresholdConfig,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

/// Setups never overlap in one process: queries run in parallel, and two of them finding no
/// key for their parameter set must not both set one up (a node pins one deployment per set).
static SETUP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Coordinator {
    /// The digest of the deployment whose collective key every node pinned for `params` —
    /// what proposals name: the stored one if it was made for exactly these nodes and this
    /// threshold, otherwise a fresh setup across every node (one at a time in this process).
    pub(crate) async fn deployment_digest(
        &mut self,
        params: &Arc<BfvParameters>,
    ) -> Result<[u8; 32], CoordinatorError> {
        if let Some(digest) = self.deployments.get(params.name()) {
            return Ok(*digest);
        }
        let _one_at_a_time = SETUP.lock().await;
        if let Some(stored) = self.store.collective_key(params.name())? {
            let deployment = self.deployment(params, stored.crs_seed.clone());
            let digest = concord_api::deployment::digest(&deployment);
            let evaluation_keys = !params.is_multiplicative()
                || self
                    .store
                    .relinearization_key(params.name(), &digest)?
                    .is_some();
            if stored.parties == self.pool.members()
                && stored.threshold == self.threshold.unwrap_or(0)
                && stored.deployment[..] == digest[..]
                && evaluation_keys
            {
                self.deployments.insert(params.name(), digest);
                return Ok(digest);
            }
        }
        self.setup(params).await?;
        Ok(self.deployments[params.name()])
    }

    /// The relinearization key every node pinned for the deployment `digest` of `params`'s
    /// set (set up with it: multiplicative sets only).
    pub(crate) fn relinearization_key(
        &self,
        params: &Arc<BfvParameters>,
        digest: &[u8],
    ) -> Result<RelinearizationKey, CoordinatorError> {
        let missing = || {
            CoordinatorError::Stored(format!(
                "no relinearization key for {}: its setup made none",
                params.name()
            ))
        };
        let digest: &[u8; 32] = digest.try_into().map_err(|_| missing())?;
        let bytes = self
            .store
            .relinearization_key(params.name(), digest)?
            .ok_or_else(missing)?;
        Ok(RelinearizationKey::from_bytes(params, &bytes)?)
    }

    /// The deployment of every node in the pool, with the given CRS seed.
    fn deployment(&self, params: &BfvParameters, crs_seed: Vec<u8>) -> Deployment {
        Deployment {
            parameter_set: params.name().into(),
            crs_seed,
            parties: (0..self.pool.len())
                .map(|i| Party {
                    number: self.pool.address(i).party,
                    name: self.pool.name(i).to_owned(),
                })
                .collect(),
            threshold: self.threshold.unwrap_or(0) as u32,
        }
    }

    /// Key setup across every node for `params`, with a fresh CRS: every node's signed CKG
    /// share, then every share to every node, which pins the key; the key is stored.
    pub async fn setup(
        &mut self,
        params: &Arc<BfvParameters>,
    ) -> Result<PublicKey, CoordinatorError> {
        let n = self.pool.len();
        let numbers: Vec<u32> = (0..n).map(|i| self.pool.address(i).party).collect();
        if numbers
            .iter()
            .enumerate()
            .any(|(i, &p)| p as usize != i + 1)
        {
            return Err(CoordinatorError::Numbering { parties: numbers });
        }
        if let Some(threshold) = self.threshold {
            let parties: Vec<PartyId> = numbers.iter().map(|&p| PartyId(p)).collect();
            ThresholdConfig::new(threshold, &parties).map_err(|e| CoordinatorError::Threshold {
                threshold,
                nodes: n,
                reason: e.to_string(),
            })?;
        }
        let crs = CommonReferenceString::random();
        let deployment = self.deployment(params, crs.seed().to_vec());
        let digest = concord_api::deployment::digest(&deployment);
        let ckg = PublicKeyGen::new(params, &crs);
        let mut aggregate = ckg.aggregator();
        let started = Instant::now();
        let mut calls = self.pool.call_each(
            0..n,
            |_| SetupRequest {
                deployment: Some(deployment.clone()),
            },
            |mut client, request| async move { client.setup(request).await },
        );
        let mut signed = vec![None; n];
        while let Some((i, reply)) = next(&mut calls).await {
            let address = self.pool.address(i);
            let reply = reply?;
            concord_api::deployment::verify_key_share(&self.ca_pem, &digest, &address.name, &reply)
                .map_err(|e| CoordinatorError::bad_reply(&address.name, e))?;
            let share = PublicKeyShare::from_bytes(params, &reply.share)
                .map_err(|e| CoordinatorError::bad_reply(&address.name, e))?;
            if share.party.0 != address.party {
                return Err(CoordinatorError::bad_reply(
                    &address.name,
                    "share for another party",
                ));
            }
            aggregate.add(&share)?;
            signed[i] = Some(reply);
        }
        drop(calls);
        let key = ckg.finish(&aggregate, &self.pool.parties())?;
        let key_digest = Sha256::digest(key.to_bytes());
        let pin = PinRequest {
            deployment: Some(deployment.clone()),
            shares: signed.into_iter().flatten().collect(),
        };
        let pinned = self
            .pool
            .call_all(
                0..n,
                |_| pin.clone(),
                |mut client, request| async move { client.pin(stream(request)).await },
            )
            .await?;
        for (i, reply) in pinned {
            if reply.key_digest[..] != key_digest[..] {
                return Err(CoordinatorError::bad_reply(
                    self.pool.name(i),
                    "it pinned another collective key",
                ));
            }
        }
        if let Some(threshold) = self.threshold {
            self.threshold_setup(params, &crs, threshold).await?;
        }
        if params.is_multiplicative() {
            if self.threshold.is_some() {
                return Err(CoordinatorError::Threshold {
                    threshold: self.threshold.unwrap_or(0),
                    nodes: n,
                    reason: format!(
                        "{} needs evaluation keys, made in all-party mode only",
                        params.name()
                    ),
                });
            }
            let rlk = self.evaluation_setup(params, &crs, &digest).await?;
            self.store
                .put_relinearization_key(params.name(), &digest, &rlk.to_bytes())?;
        }
        self.store.put_collective_key(
            params.name(),
            &StoredKey {
                parties: self.pool.members(),
                key: key.to_bytes(),
                threshold: self.threshold.unwrap_or(0),
                crs_seed: crs.seed().to_vec(),
                deployment: digest.to_vec(),
            },
        )?;
        self.deployments.insert(params.name(), digest);
        tracing::info!(
            set = params.name(),
            nodes = n,
            "collective public key pinned by every node"
        );
        self.pool.step_done(params.name(), Step::Setup, started);
        Ok(key)
    }

    /// The evaluation keys of a multiplicative deployment after the pin, relayed between the
    /// nodes (node `evaluation`): every node's exchange key; RKG round one (every node's signed
    /// share, and its binning secret sealed to every node, unreadable here); round two (to
    /// each node every round-one share and the secrets sealed to it); then every share of both
    /// rounds to every node, which recomputes the relinearization key and pins it. The key is
    /// computed here too — public, for evaluating circuits — and must be the one every node pinned.
    async fn evaluation_setup(
        &mut self,
        params: &Arc<BfvParameters>,
        crs: &CommonReferenceString,
        digest: &[u8; 32],
    ) -> Result<RelinearizationKey, CoordinatorError> {
        let n = self.pool.len();
        let parties = self.exchange_keys().await?;
        let gen = RelinearizationKeyGen::new(params, crs)?;
        let check = |i: usize, signed: Option<SignedKeyShare>| {
            let address = self.pool.address(i);
            let signed =
                signed.ok_or_else(|| CoordinatorError::bad_reply(&address.name, "no share"))?;
            concord_api::deployment::verify_key_share(&self.ca_pem, digest, &address.name, &signed)
                .map_err(|e| CoordinatorError::bad_reply(&address.name, e))?;
            let share = EvaluationKeyShare::from_bytes(params, &signed.share)
                .map_err(|e| CoordinatorError::bad_reply(&address.name, e))?;
            if share.party.0 != address.party {
                return Err(CoordinatorError::bad_reply(
                    &address.name,
                    "share for another party",
                ));
            }
            Ok((address.party, signed, share))
        };
        let first = self
            .pool
            .call_all(
                0..n,
                |_| RelinearizeRequest {
                    deployment: digest.to_vec(),
                    parties: parties.clone(),
                    ..Default::default()
                },
                |mut client, request| async move { client.relinearize_one(request).await },
            )
            .await?;
        let mut round_one = gen.round_one_aggregator();
        let mut signed_one = BTreeMap::new();
        let mut sealed_to: HashMap<u32, Vec<SealedSecret>> = HashMap::new();
        for (i, reply) in first {
            let address = self.pool.address(i);
            if reply.sealed.len() != n || reply.sealed.iter().any(|s| s.from != address.party) {
                return Err(CoordinatorError::bad_reply(
                    &address.name,
                    "not one binning secret from it to every party",
                ));
            }
            for sealed in reply.sealed {
                sealed_to.entry(sealed.to).or_default().push(sealed);
            }
            let (party, signed, share) = check(i, reply.share)?;
            round_one.add(&share)?;
            signed_one.insert(party, signed);
        }
        let signed_one: Vec<SignedKeyShare> = signed_one.into_values().collect();
        let second = self
            .pool
            .call_all(
                0..n,
                |address| RelinearizeRequest {
                    deployment: digest.to_vec(),
                    shares: signed_one.clone(),
                    sealed: sealed_to.get(&address.party).cloned().unwrap_or_default(),
                    ..Default::default()
                },
                |mut client, request| async move { client.relinearize_two(stream(request)).await },
            )
            .await?;
        let mut round_two = gen.round_two_aggregator(&round_one)?;
        let mut signed_two = BTreeMap::new();
        for (i, reply) in second {
            let (party, signed, share) = check(i, reply.share)?;
            round_two.add(&share)?;
            signed_two.insert(party, signed);
        }
        let rlk = gen.finish(&round_one, &round_two, &self.pool.parties())?;
        let rlk_digest = Sha256::digest(rlk.to_bytes());
        let all: Vec<SignedKeyShare> = signed_one
            .into_iter()
            .chain(signed_two.into_values())
            .collect();
        let pinned =
            self.pool
                .call_all(
                    0..n,
                    |_| RelinearizeRequest {
                        deployment: digest.to_vec(),
                        shares: all.clone(),
                        ..Default::default()
                    },
                    |mut client, request| async move {
                        client.pin_relinearization(stream(request)).await
                    },
                )
                .await?;
        for (i, reply) in pinned {
            if reply.key_digest[..] != rlk_digest[..] {
                return Err(CoordinatorError::bad_reply(
                    self.pool.name(i),
                    "it pinned another relinearization key",
                ));
            }
        }
        tracing::info!(
            set = params.name(),
            nodes = n,
            "relinearization key and binning key in place at every node"
        );
        Ok(rlk)
    }

    /// Every node's exchange key, checked to be signed by that node, in party order.
    async fn exchange_keys(&self) -> Result<Vec<ThresholdParty>, CoordinatorError> {
        let n = self.pool.len();
        let keys = self
            .pool
            .call_all(
                0..n,
                |_| ExchangeKeyRequest {},
                |mut client, request| async move { client.exchange_key_of(request).await },
            )
            .await?;
        let mut parties = Vec::new();
        for (i, key) in keys {
            let address = self.pool.address(i);
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
        Ok(parties)
    }

    /// Threshold setup (T of N) after the pin, relayed between the nodes: every node's exchange
    /// key, then every node's resharings (each sealed to its recipient, unreadable here),
    /// then to each node the resharings sealed to it, from which it keeps its threshold share.
    async fn threshold_setup(
        &mut self,
        params: &Arc<BfvParameters>,
        crs: &CommonReferenceString,
        threshold: usize,
    ) -> Result<(), CoordinatorError> {
        let n = self.pool.len();
        let parties = self.exchange_keys().await?;
        let setup = ThresholdSetup {
            parameter_set: params.name().into(),
            crs_seed: crs.seed().to_vec(),
            threshold: threshold as u32,
            parties,
        };
        let resharings = self
            .pool
            .call_all(
                0..n,
                |_| ReshareRequest {
                    setup: Some(setup.clone()),
                },
                |mut client, request| async move {
                    let parts = client.reshare(request).await?.into_inner();
                    Ok(tonic::Response::new(collect(parts, |_| Ok(n)).await?))
                },
            )
            .await?;
        let mut to: HashMap<u32, Vec<SealedSecret>> = HashMap::new();
        for (i, reply) in resharings {
            let address = self.pool.address(i);
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
        self.pool
            .call_all(
                0..n,
                |address| CombineRequest {
                    setup: Some(setup.clone()),
                    sealed: to.get(&address.party).cloned().unwrap_or_default(),
                },
                |mut client, request| async move { client.combine(stream(request)).await },
            )
            .await?;
        tracing::info!(
            set = params.name(),
            threshold,
            nodes = n,
            "threshold key shares in place"
        );
        Ok(())
    }
}
