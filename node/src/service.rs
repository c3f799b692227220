//! The node's gRPC service: what the coordinator may ask of it (proto `concord.v1.Node`).

use crate::keystore::KeyStore;
use concord_api::pki::Role;
use concord_api::tls::require_role;
use concord_api::v1::node_server::Node;
use concord_api::v1::{SetupRequest, SetupShare};
use concord_bfv::{params, BfvParameters};
use concord_mhe::{CommonReferenceString, PartyId, PublicKeyGen};
use tonic::{Request, Response, Status};

pub struct NodeService {
    keys: KeyStore,
}

impl NodeService {
    pub fn new(keys: KeyStore) -> Self {
        Self { keys }
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    /// CKG: `p_i = −s_i·a + e_i` under this node's persistent key share for the set.
    async fn setup(&self, request: Request<SetupRequest>) -> Result<Response<SetupShare>, Status> {
        let caller = require_role(&request, Role::Coordinator)?;
        let req = request.into_inner();
        let spec = params::spec_by_name(&req.parameter_set).ok_or_else(|| {
            Status::invalid_argument(format!("unknown parameter set {:?}", req.parameter_set))
        })?;
        let seed: [u8; 32] = req.crs_seed.as_slice().try_into().map_err(|_| {
            Status::invalid_argument(format!(
                "crs_seed must be 32 bytes, got {}",
                req.crs_seed.len()
            ))
        })?;
        if req.party == 0 {
            return Err(Status::invalid_argument("party numbers start at 1"));
        }
        let params = BfvParameters::new(spec).map_err(|e| Status::internal(e.to_string()))?;
        let key = self
            .keys
            .key(&params)
            .map_err(|e| Status::internal(e.to_string()))?;
        let share = PublicKeyGen::new(&params, &CommonReferenceString::from_seed(seed))
            .share(&key, PartyId(req.party))
            .map_err(|e| Status::internal(e.to_string()))?;
        tracing::info!(coordinator = %caller.name, set = spec.name, party = req.party, "gave a CKG share");
        Ok(Response::new(SetupShare {
            share: share.to_bytes(),
        }))
    }
}
