//! Evidence: frames kept for enforcement.
//!
//! Originals are stored byte for byte as received; annotated copies show the
//! zone outline, the score and the capture time. Every file is named by its
//! SHA-256 and written atomically (temporary file, fsync, rename), so a file
//! that exists is complete and its name proves its content.

pub mod annotate;
pub mod bundle;
pub mod closeup;
pub mod signing;
mod zipcheck;

use std::path::{Path, PathBuf};

pub use crate::base::digest::sha256_hex;
use crate::base::durable;

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence store {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("evidence {0} is not a SHA-256 name")]
    BadName(String),
    #[error("annotating a frame failed: {0}")]
    Annotate(String),
}

/// A stored file: its hash and path relative to the store's root.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub sha256: String,
    pub rel_path: String,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct EvidenceStore {
    root: PathBuf,
}

impl EvidenceStore {
    pub fn open(root: &Path) -> Result<EvidenceStore, EvidenceError> {
        std::fs::create_dir_all(root).map_err(|source| EvidenceError::Io {
            path: root.display().to_string(),
            source,
        })?;
        Ok(EvidenceStore {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores `bytes` as `<sha[0..2]>/<sha>.jpg`, durably. A file already
    /// there is kept when it holds those bytes and replaced when it does
    /// not (a corrupt or truncated copy must not stand for the evidence).
    pub fn put(&self, bytes: &[u8]) -> Result<Stored, EvidenceError> {
        let sha = sha256_hex(bytes);
        let rel = format!("{}/{}.jpg", &sha[..2], sha);
        let path = self.root.join(&rel);
        let io = |source| EvidenceError::Io {
            path: path.display().to_string(),
            source,
        };
        let intact = std::fs::read(&path).is_ok_and(|have| have == bytes);
        if !intact {
            let dir = path.parent().expect("has a parent");
            std::fs::create_dir_all(dir).map_err(io)?;
            durable::write(&path, bytes, None, durable::Existing::Replace).map_err(io)?;
        }
        Ok(Stored {
            sha256: sha,
            rel_path: rel,
            bytes: bytes.len() as u64,
        })
    }

    /// Reads a stored file back by its hash, checking it is unaltered.
    pub fn get(&self, sha256: &str) -> Result<Vec<u8>, EvidenceError> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EvidenceError::BadName(sha256.to_string()));
        }
        let sha = sha256.to_ascii_lowercase();
        let path = self.root.join(&sha[..2]).join(format!("{sha}.jpg"));
        std::fs::read(&path).map_err(|source| EvidenceError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn path_of(&self, rel_path: &str) -> PathBuf {
        self.root.join(rel_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_by_content_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = EvidenceStore::open(dir.path()).unwrap();
        let a = store.put(b"frame one").unwrap();
        let again = store.put(b"frame one").unwrap();
        assert_eq!(a, again);
        assert_eq!(a.sha256, sha256_hex(b"frame one"));
        assert_eq!(store.get(&a.sha256).unwrap(), b"frame one");
        assert!(store.path_of(&a.rel_path).exists());
        assert!(matches!(
            store.get("../../etc/passwd"),
            Err(EvidenceError::BadName(_))
        ));
        // no temporary files left behind
        let leftovers: Vec<_> = std::fs::read_dir(store.path_of(&a.sha256[..2]))
            .unwrap()
            .collect();
        assert_eq!(leftovers.len(), 1);
    }

    /// A file already at the content's name that does not hold that
    /// content (a torn write from before, a bit flip) is replaced, not kept.
    #[test]
    fn a_corrupt_file_under_the_name_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = EvidenceStore::open(dir.path()).unwrap();
        let a = store.put(b"frame one").unwrap();
        std::fs::write(store.path_of(&a.rel_path), b"frame o").unwrap();
        let again = store.put(b"frame one").unwrap();
        assert_eq!(again, a);
        assert_eq!(
            std::fs::read(store.path_of(&a.rel_path)).unwrap(),
            b"frame one"
        );
    }
}
