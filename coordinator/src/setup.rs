//! Setup, per parameter set: the collective public key by CKG across every node (PETS 2021
//! §IV-A), then — in threshold mode — the threshold key shares, relayed between the nodes
//! (exchange keys, resharings sealed node to node, combination). The key and the parties it
//! was made for are stored, so queries after a restart use the same key.

use crate::pool::{next, Step};
use crate::store::StoredKey;
use crate::{Coordinator, CoordinatorError};
use concord_api::chunks::{collect, stream};
use concord_api::v1::{
    CombineRequest, ExchangeKeyRequest, ReshareRequest, SealedSecret, SetupRequest, ThresholdParty,
    ThresholdSetup,
};
use concord_bfv::{BfvParameters, PublicKey};
use concord_mhe::{CommonReferenceString, Protocol, PublicKeyGen, PublicKeyShare};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

impl Coordinator {
    /// The collective public key for `params` (with the seed of its CRS, which names the setup
    /// threshold shares belong to): the stored one if it was made for exactly these nodes,
    /// otherwise a fresh setup across every node.
    pub(crate) async fn collective_key(
        &mut self,
        params: &Arc<BfvParameters>,
    ) -> Result<(PublicKey, Vec<u8>), CoordinatorError> {
        if let Some(key) = self.collective_keys.get(params.name()) {
            return Ok(key.clone());
        }
        if let Some(stored) = self.store.collective_key(params.name())? {
            if stored.parties == self.pool.members()
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
        let mut calls = self.pool.call_each(
            0..self.pool.len(),
            |address| SetupRequest {
                parameter_set: params.name().into(),
                crs_seed: crs.seed().to_vec(),
                party: address.party,
            },
            |mut client, request| async move { client.setup(request).await },
        );
        while let Some((i, reply)) = next(&mut calls).await {
            let address = self.pool.address(i);
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
        let key = ckg.finish(&aggregate, &self.pool.parties())?;
        if let Some(threshold) = self.threshold {
            self.threshold_setup(params, &crs, threshold).await?;
        }
        self.store.put_collective_key(
            params.name(),
            &StoredKey {
                parties: self.pool.members(),
                key: key.to_bytes(),
                threshold: self.threshold.unwrap_or(0),
                crs_seed: crs.seed().to_vec(),
            },
        )?;
        self.collective_keys
            .insert(params.name(), (key.clone(), crs.seed().to_vec()));
        tracing::info!(
            set = params.name(),
            nodes = self.pool.len(),
            "collective public key ready"
        );
        self.pool.step_done(params.name(), Step::Setup, started);
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
        let n = self.pool.len();
        if threshold < 2 || threshold > n {
            return Err(CoordinatorError::Threshold {
                threshold,
                nodes: n,
            });
        }
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
