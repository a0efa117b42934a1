//! SHA-256 as lowercase hex: how firelane names evidence files, models,
//! configurations and violations.

use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
