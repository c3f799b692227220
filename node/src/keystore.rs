//! The node's key shares at rest: one file per parameter set in `keys_dir`, created on first
//! use with owner-only permissions and reused on every restart — a key share never leaves the
//! node, and a node that lost it can no longer take part in decryptions under its collective key.
//! A key file readable by anyone but its owner is refused.

use concord_bfv::{BfvParameters, SecretKey};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
}

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
        Ok(Self {
            dir: dir.into(),
            loaded: Mutex::new(HashMap::new()),
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

fn check_private(path: &Path) -> Result<(), KeyStoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|source| KeyStoreError::Io {
                path: path.into(),
                source,
            })?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyStoreError::Permissions {
                path: path.into(),
                mode,
            });
        }
    }
    Ok(())
}
