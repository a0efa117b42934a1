//! Derived identifiers: the same inputs always give the same id, so a
//! restart, a retried commit or a second replay never duplicates a record.

use super::digest::sha256_hex;
use super::time::Millis;

/// A violation's id: stable for a camera, zone and start time.
pub fn violation_id(camera: &str, zone: &str, start_ms: Millis) -> String {
    let digest = sha256_hex(format!("{camera}\n{zone}\n{start_ms}").as_bytes());
    format!("v-{}", &digest[..20])
}
