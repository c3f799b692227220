//! The researcher's result keys: one BFV key pair per parameter set, made by `concord keys
//! init`. A query's result is key-switched (PCKS) to the public key of its agreement's set, so
//! that only the holder of the secret key — never the coordinator — can read it. Files in the
//! key directory: `NAME.SET.pk` (public) and `NAME.SET.sk` (secret, owner-only).

use concord_bfv::{params, BfvParameters, PublicKey, SecretKey};
use concord_query::QueryAgreement;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub type Error = Box<dyn std::error::Error>;

fn file(dir: &Path, name: &str, set: &str, ext: &str) -> PathBuf {
    dir.join(format!("{name}.{set}.{ext}"))
}

fn parameters(set: &str) -> Result<Arc<BfvParameters>, Error> {
    let spec = params::spec_by_name(set).ok_or_else(|| format!("unknown parameter set {set}"))?;
    Ok(BfvParameters::new(spec)?)
}

/// The parameter sets the catalogue's templates run under (an overlap template's, each of
/// the sets the community's size may choose), each once.
fn template_sets() -> Vec<&'static params::ParameterSpec> {
    let mut sets: Vec<&'static params::ParameterSpec> = Vec::new();
    for template in concord_stats::TEMPLATES {
        for set in template.parameter_sets() {
            if let Some(spec) = params::spec_by_name(set) {
                if !sets.iter().any(|s| s.id == spec.id) {
                    sets.push(spec);
                }
            }
        }
    }
    sets
}

/// Creates a key pair per parameter set a template runs under; refuses to replace an
/// existing key unless `force`. Keys missing beside existing ones (a set added to the
/// catalogue since) are made, the others kept.
pub fn init(dir: &Path, name: &str, force: bool) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir)?;
    let sets = template_sets();
    let existing: Vec<PathBuf> = sets
        .iter()
        .map(|spec| file(dir, name, spec.name, "sk"))
        .filter(|path| path.exists())
        .collect();
    if !force && existing.len() == sets.len() {
        return Err(format!(
            "{} exists: a new key would make results sealed to the old one unreadable (--force replaces it)",
            existing[0].display()
        )
        .into());
    }
    let mut written = Vec::new();
    for spec in sets {
        let sk_path = file(dir, name, spec.name, "sk");
        if sk_path.exists() && !force {
            continue;
        }
        let params = BfvParameters::new(spec)?;
        let sk = SecretKey::generate(&params);
        concord_api::pki::write_file(&sk_path, &sk.to_bytes(), true)?;
        let pk_path = file(dir, name, spec.name, "pk");
        concord_api::pki::write_file(&pk_path, &PublicKey::generate(&sk).to_bytes(), false)?;
        written.push(pk_path);
    }
    Ok(written)
}

/// The public key a query running under the parameter set `set` is sealed to (its agreement's:
/// `QueryAgreement::new(..).plan.params`).
pub fn public_key(dir: &Path, name: &str, set: &str) -> Result<Vec<u8>, Error> {
    let path = file(dir, name, set, "pk");
    let bytes = std::fs::read(&path).map_err(|e| {
        format!(
            "{}: {e} (create result keys with `concord keys init`, or submit with --public)",
            path.display()
        )
    })?;
    PublicKey::from_bytes(&parameters(set)?, &bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

/// Decrypts a sealed result with the researcher's secret key and decodes its cells by the
/// query's agreement.
pub fn open_sealed(
    dir: &Path,
    name: &str,
    agreement: &QueryAgreement,
    sealed: &[Vec<u8>],
) -> Result<Vec<i128>, Error> {
    let params = &agreement.plan.params;
    let path = file(dir, name, params.name(), "sk");
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    let sk =
        SecretKey::from_bytes(params, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let plaintexts = sealed
        .iter()
        .map(|bytes| {
            let ct = concord_bfv::Ciphertext::from_bytes(params, bytes)?;
            sk.decrypt(&ct)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "the sealed result does not open with {}: {e}",
                path.display()
            )
        })?;
    Ok(agreement.plan.decode(&plaintexts)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_once_and_secret_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let written = init(dir.path(), "alice", false).unwrap();
        assert_eq!(written.len(), template_sets().len());
        // the overlap templates' two sets, by the size of the community
        assert!(dir.path().join("alice.MUL-16384-T26.pk").exists());
        assert!(dir.path().join("alice.MUL-32768-T26.pk").exists());
        let again = init(dir.path(), "alice", false).unwrap_err().to_string();
        assert!(again.contains("--force"), "{again}");
        // a set added to the catalogue since: its key is made, the others kept
        let kept = std::fs::read(dir.path().join("alice.ADD-8192.sk")).unwrap();
        std::fs::remove_file(dir.path().join("alice.MUL-16384-T26.sk")).unwrap();
        assert_eq!(init(dir.path(), "alice", false).unwrap().len(), 1);
        assert_eq!(
            std::fs::read(dir.path().join("alice.ADD-8192.sk")).unwrap(),
            kept
        );
        assert!(init(dir.path(), "alice", true).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let sk = std::fs::metadata(dir.path().join("alice.ADD-8192.sk")).unwrap();
            assert_eq!(sk.permissions().mode() & 0o077, 0);
        }
        let pk = public_key(dir.path(), "alice", "ADD-8192").unwrap();
        assert!(!pk.is_empty());
        let missing = public_key(dir.path(), "bob", "ADD-8192").unwrap_err();
        assert!(
            missing.to_string().contains("concord keys init"),
            "{missing}"
        );
    }
}
