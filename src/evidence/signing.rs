//! The site key: an Ed25519 key pair created on first use, which signs
//! evidence bundles. The private key never leaves the data folder.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("site key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("site key {path}: {message}")]
    Malformed { path: String, message: String },
}

pub struct SiteKey {
    key: SigningKey,
    path: PathBuf,
}

impl SiteKey {
    /// Reads the key at `path` (hex seed), or creates it there (mode 0600)
    /// with its public half beside it as `<path>.pub`.
    pub fn load_or_create(path: &Path) -> Result<SiteKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let read = || -> Result<SigningKey, KeyError> {
            let text = std::fs::read_to_string(path).map_err(io)?;
            let seed: [u8; 32] = hex::decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| KeyError::Malformed {
                    path: path.display().to_string(),
                    message: "expected 64 hex characters (an Ed25519 seed)".into(),
                })?;
            Ok(SigningKey::from_bytes(&seed))
        };
        let key = if path.exists() {
            read()?
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let mut seed = [0u8; 32];
            rand::fill(&mut seed);
            let key = SigningKey::from_bytes(&seed);
            // Written whole, then linked into place: a crash never leaves
            // an empty key that would stop the daemon from starting.
            let text = format!("{}\n", hex::encode(seed));
            match crate::base::durable::write(
                path,
                text.as_bytes(),
                Some(0o600),
                crate::base::durable::Existing::Keep,
            ) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), public_key = %hex::encode(key.verifying_key().as_bytes()), "created the site signing key");
                    key
                }
                // Another instance sharing the key file made it first
                // (a cluster starting at once): use that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read()?,
                Err(e) => return Err(io(e)),
            }
        };
        let site = SiteKey {
            key,
            path: path.to_path_buf(),
        };
        let pub_path = site.public_key_path();
        if !pub_path.exists() {
            crate::base::durable::write(
                &pub_path,
                format!("{}\n", site.public_key_hex()).as_bytes(),
                Some(0o644),
                crate::base::durable::Existing::Replace,
            )
            .map_err(|source| KeyError::Io {
                path: pub_path.display().to_string(),
                source,
            })?;
        }
        Ok(site)
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    pub fn public_key_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".pub");
        PathBuf::from(p)
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// Parses a public key given as 64 hex characters (surrounding whitespace
/// allowed), as `firelane evidence public-key` prints it.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .map_err(|e| format!("not hex: {e}"))?
        .try_into()
        .map_err(|b: Vec<u8>| format!("{} bytes, an Ed25519 public key has 32", b.len()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not an Ed25519 point: {e}"))
}

pub fn verify_signature(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    let Ok(sig) = Signature::from_slice(signature) else {
        return false;
    };
    key.verify(message, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Instances sharing one key file and starting together all end up
    /// with the key on disk, none with an error or a key of its own.
    #[test]
    fn instances_starting_at_once_share_one_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("site.key");
            let start = std::sync::Barrier::new(6);
            let keys: Vec<String> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..6)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            SiteKey::load_or_create(&path).unwrap().public_key_hex()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let on_disk = SiteKey::load_or_create(&path).unwrap().public_key_hex();
            assert!(keys.iter().all(|k| *k == on_disk), "{keys:?} vs {on_disk}");
            let public = std::fs::read_to_string(path.with_extension("key.pub")).unwrap();
            assert_eq!(public.trim(), on_disk);
        }
    }

    #[test]
    fn creates_once_then_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/site.key");
        let a = SiteKey::load_or_create(&path).unwrap();
        let b = SiteKey::load_or_create(&path).unwrap();
        assert_eq!(a.public_key_hex(), b.public_key_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let published = std::fs::read_to_string(a.public_key_path()).unwrap();
        let key = parse_public_key(&published).unwrap();
        let sig = a.sign(b"manifest");
        assert!(verify_signature(&key, b"manifest", &sig));
        assert!(!verify_signature(&key, b"manifest!", &sig));
        assert!(parse_public_key("abcd").unwrap_err().contains("2 bytes"));
    }
}
