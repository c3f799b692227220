//! The node's key shares at rest: one file per parameter set in `keys_dir`, created on first
//! use with owner-only permissions and reused on every restart — a key share never leaves the
//! node, and a node that lost it can no longer take part in decryptions under its collective key.
//! A key file readable by anyone but its owner is refused.

use concord_api::exchange::ExchangeSecret;
use concord_bfv::{BfvParameters, SecretKey};
use concord_mhe::{PartyId, ThresholdConfig, ThresholdSecretKey};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: key share readable by others (mode {mode:o}); make it owner-only (chmod 600) or remove it")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path}: not a key share of parameter set {set}: {reason}")]
    Corrupt {
        path: PathBuf,
        set: &'static str,
        reason: String,
    },
}

pub struct KeyStore {
    dir: PathBuf,
    loaded: Mutex<HashMap<&'static str, Arc<SecretKey>>>,
    /// Threshold keys derived for active sets, by (set, CRS seed, active parties): deriving one
    /// expands thousands of sub-share seeds, and the active set rarely changes.
    active: Mutex<HashMap<ActiveSet, Arc<SecretKey>>>,
}

type ActiveSet = (&'static str, [u8; 32], Vec<PartyId>);

/// How many derived threshold keys are kept in memory.
const ACTIVE_KEYS_KEPT: usize = 8;

impl KeyStore {
    pub fn open(dir: &Path) -> Result<Self, KeyStoreError> {
        std::fs::create_dir_all(dir).map_err(|source| KeyStoreError::Io {
            path: dir.into(),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        // every secret already here must be owner-only: a node refuses to start otherwise,
        // rather than at first use
        let entries = std::fs::read_dir(dir).map_err(|source| KeyStoreError::Io {
            path: dir.into(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path
                .extension()
                .is_some_and(|e| e == "key" || e == "threshold" || e == "binning")
            {
                check_private(&path)?;
            }
        }
        Ok(Self {
            dir: dir.into(),
            loaded: Mutex::new(HashMap::new()),
            active: Mutex::new(HashMap::new()),
        })
    }

    /// The key share for `params`, loaded or created.
    pub fn key(&self, params: &Arc<BfvParameters>) -> Result<Arc<SecretKey>, KeyStoreError> {
        let mut loaded = self.loaded.lock().expect("key store lock");
        if let Some(k) = loaded.get(params.name()) {
            return Ok(k.clone());
        }
        let path = self.dir.join(format!("{}.key", params.name()));
        let key = if path.exists() {
            check_private(&path)?;
            let bytes = zeroize::Zeroizing::new(std::fs::read(&path).map_err(|source| {
                KeyStoreError::Io {
                    path: path.clone(),
                    source,
                }
            })?);
            SecretKey::from_bytes(params, &bytes).map_err(|e| KeyStoreError::Corrupt {
                path: path.clone(),
                set: params.name(),
                reason: e.to_string(),
            })?
        } else {
            let key = SecretKey::generate(params);
            concord_api::pki::write_file(&path, &key.to_bytes(), true).map_err(|e| {
                KeyStoreError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(e.to_string()),
                }
            })?;
            tracing::info!(set = params.name(), "created a new key share");
            key
        };
        let key = Arc::new(key);
        loaded.insert(params.name(), key.clone());
        Ok(key)
    }
}

/// A threshold key share as the node keeps it: its sub-shares, with the configuration it belongs to
/// (T, the parties, and the CRS of the collective key it shares).
pub struct StoredThreshold {
    pub crs_seed: [u8; 32],
    pub config: ThresholdConfig,
    pub key: ThresholdSecretKey,
}

impl KeyStore {
    fn read_private(&self, path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, KeyStoreError> {
        if !path.exists() {
            return Ok(None);
        }
        check_private(path)?;
        std::fs::read(path)
            .map(|b| Some(Zeroizing::new(b)))
            .map_err(|source| KeyStoreError::Io {
                path: path.into(),
                source,
            })
    }

    fn write_private(&self, path: &Path, bytes: &[u8]) -> Result<(), KeyStoreError> {
        concord_api::pki::write_file(path, bytes, true).map_err(|e| KeyStoreError::Io {
            path: path.into(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// The node's exchange secret (`exchange.key`, created on first use), for secrets sealed
    /// to it by other nodes (threshold setup).
    pub fn exchange_secret(&self) -> Result<ExchangeSecret, KeyStoreError> {
        let path = self.dir.join("exchange.key");
        match self.read_private(&path)? {
            Some(bytes) => {
                let bytes: [u8; 32] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| KeyStoreError::Corrupt {
                            path: path.clone(),
                            set: "exchange",
                            reason: format!("{} bytes, not 32", bytes.len()),
                        })?;
                Ok(ExchangeSecret::from_bytes(bytes))
            }
            None => {
                let secret = ExchangeSecret::generate();
                self.write_private(&path, secret.to_bytes().as_slice())?;
                tracing::info!("created the node's exchange key");
                Ok(secret)
            }
        }
    }

    /// Keeps the threshold key share for `params` (`SET.threshold`, owner-only), replacing an
    /// earlier one.
    pub fn put_threshold(
        &self,
        params: &Arc<BfvParameters>,
        stored: &StoredThreshold,
    ) -> Result<(), KeyStoreError> {
        let mut bytes = Zeroizing::new(stored.crs_seed.to_vec());
        bytes.extend_from_slice(&(stored.config.threshold() as u32).to_le_bytes());
        bytes.extend_from_slice(&(stored.config.parties().len() as u32).to_le_bytes());
        for p in stored.config.parties() {
            bytes.extend_from_slice(&p.0.to_le_bytes());
        }
        bytes.extend_from_slice(&stored.key.to_bytes());
        // keys derived from an earlier setup's share are forgotten
        self.active.lock().expect("key store lock").clear();
        self.write_private(
            &self.dir.join(format!("{}.threshold", params.name())),
            &bytes,
        )
    }

    /// This node's key for the active set `active` from its threshold key share `stored`,
    /// derived once and kept in memory for the next query with the same set.
    pub fn active_key(
        &self,
        params: &Arc<BfvParameters>,
        stored: &StoredThreshold,
        active: &[PartyId],
    ) -> Result<Arc<SecretKey>, concord_mhe::MheError> {
        let id = (params.name(), stored.crs_seed, active.to_vec());
        if let Some(key) = self.active.lock().expect("key store lock").get(&id) {
            return Ok(key.clone());
        }
        let key = Arc::new(stored.key.for_active_set(&stored.config, active)?);
        let mut kept = self.active.lock().expect("key store lock");
        if kept.len() >= ACTIVE_KEYS_KEPT {
            kept.clear();
        }
        kept.insert(id, key.clone());
        Ok(key)
    }

    /// The threshold key share for `params`, if threshold setup ran.
    pub fn threshold(
        &self,
        params: &Arc<BfvParameters>,
    ) -> Result<Option<StoredThreshold>, KeyStoreError> {
        let path = self.dir.join(format!("{}.threshold", params.name()));
        let Some(bytes) = self.read_private(&path)? else {
            return Ok(None);
        };
        let corrupt = |reason: String| KeyStoreError::Corrupt {
            path: path.clone(),
            set: params.name(),
            reason,
        };
        let u32_at = |at: usize| -> Result<u32, KeyStoreError> {
            bytes
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
                .ok_or_else(|| corrupt("truncated".into()))
        };
        let crs_seed: [u8; 32] = bytes
            .get(..32)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt("truncated".into()))?;
        let threshold = u32_at(32)? as usize;
        let count = u32_at(36)? as usize;
        let parties = (0..count)
            .map(|k| u32_at(40 + 4 * k).map(PartyId))
            .collect::<Result<Vec<_>, _>>()?;
        let key = ThresholdSecretKey::from_bytes(params, &bytes[40 + 4 * count..])
            .map_err(|e| corrupt(e.to_string()))?;
        let config =
            ThresholdConfig::new(threshold, &parties).map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(StoredThreshold {
            crs_seed,
            config,
            key,
        }))
    }
}

impl KeyStore {
    /// Keeps the overlap queries' binning key of the deployment `digest` of `params`'s set
    /// (`SET.binning`, owner-only: the digest, then the key), replacing an earlier one.
    pub fn put_binning(
        &self,
        params: &BfvParameters,
        digest: &[u8; 32],
        key: &[u8; 32],
    ) -> Result<(), KeyStoreError> {
        let bytes = Zeroizing::new([&digest[..], &key[..]].concat());
        self.write_private(&self.dir.join(format!("{}.binning", params.name())), &bytes)
    }

    /// The binning key of the deployment `digest`, if this node agreed one for it.
    pub fn binning(
        &self,
        params: &BfvParameters,
        digest: &[u8; 32],
    ) -> Result<Option<concord_stats::overlap::BinningKey>, KeyStoreError> {
        let path = self.dir.join(format!("{}.binning", params.name()));
        let Some(bytes) = self.read_private(&path)? else {
            return Ok(None);
        };
        if bytes.len() != 64 {
            return Err(KeyStoreError::Corrupt {
                path,
                set: params.name(),
                reason: format!("{} bytes, not 64", bytes.len()),
            });
        }
        Ok((&bytes[..32] == digest).then(|| {
            concord_stats::overlap::BinningKey::new(bytes[32..].try_into().expect("32 bytes"))
        }))
    }
}

fn check_private(path: &Path) -> Result<(), KeyStoreError> {
    concord_api::pki::check_private(path).map_err(|e| match e {
        concord_api::pki::PkiError::Readable { mode, .. } => KeyStoreError::Permissions {
            path: path.into(),
            mode,
        },
        e => KeyStoreError::Io {
            path: path.into(),
            source: std::io::Error::other(e.to_string()),
        },
    })
}
