//! Evidence bundles: one ZIP per violation that an officer can hand on and
//! anyone can check. `manifest.json` states the violation, the zone as it
//! was, the model, the config's hash and every file's SHA-256;
//! `manifest.sig` is the site key's Ed25519 signature over the manifest's
//! exact bytes; `public_key.txt` names the key that signed it.

use std::collections::BTreeSet;
use std::io::{Cursor, Read, Write};

use crate::base::kinds::{EndReason, EvidenceKind, EvidenceVariant, ViolationStatus};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

use super::signing::{SiteKey, parse_public_key, verify_signature};
use super::{EvidenceError, EvidenceStore};
use crate::base::time::{Millis, format_rfc3339};
use crate::store::{Store, StoreError};

pub const FORMAT: &str = "firelane-evidence-bundle/1";
const MANIFEST: &str = "manifest.json";
const SIGNATURE: &str = "manifest.sig";
const PUBLIC_KEY: &str = "public_key.txt";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("no violation {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("evidence file for {violation} ({kind} {variant}): {source}")]
    Evidence {
        violation: String,
        kind: EvidenceKind,
        variant: EvidenceVariant,
        source: EvidenceError,
    },
    #[error("evidence file {path} no longer matches its recorded SHA-256 {expected}")]
    Altered { path: String, expected: String },
    #[error("writing the ZIP: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("writing the ZIP: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub violation: ManifestViolation,
    pub zone: ManifestZone,
    pub model: ManifestModel,
    pub config_sha256: String,
    pub reviews: Vec<ManifestReview>,
    pub files: Vec<ManifestFile>,
    pub exported_at: String,
    /// Hex Ed25519 public key of the site key that signs this manifest.
    pub public_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestViolation {
    pub id: String,
    pub camera: String,
    pub zone: String,
    pub start: String,
    pub confirmed_at: String,
    pub cleared: Option<String>,
    pub last_obstructed: String,
    pub duration_s: f64,
    pub peak_score: f64,
    pub status: ViolationStatus,
    pub end_reason: Option<EndReason>,
    pub review_status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestZone {
    pub id: String,
    pub camera: String,
    /// Vertices as fractions of the image's width and height.
    pub polygon: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestModel {
    pub name: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestReview {
    pub status: String,
    pub note: String,
    pub actor: String,
    pub role: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestFile {
    pub path: String,
    pub kind: EvidenceKind,
    pub variant: EvidenceVariant,
    pub sha256: String,
    pub bytes: u64,
    pub captured_at: String,
    pub score: Option<f64>,
}

/// Builds the signed bundle for violation `id`. `exported_at` is when the
/// export happened (wall clock; it is not evidence of anything else).
pub async fn export(
    store: &Store,
    evidence: &EvidenceStore,
    key: &SiteKey,
    id: &str,
    exported_at: Millis,
) -> Result<Vec<u8>, BundleError> {
    let v = store
        .violation(id)
        .await?
        .ok_or_else(|| BundleError::NotFound(id.to_string()))?;
    let rows = store.evidence(id).await?;
    let reviews = store.reviews(id).await?;

    let mut files = Vec::new();
    let mut contents = Vec::new();
    for e in &rows {
        let bytes = evidence
            .get(&e.sha256)
            .map_err(|source| BundleError::Evidence {
                violation: id.to_string(),
                kind: e.kind,
                variant: e.variant,
                source,
            })?;
        // Refuse to sign a file that changed on disk since it was recorded.
        if super::sha256_hex(&bytes) != e.sha256 {
            return Err(BundleError::Altered {
                path: evidence.path_of(&e.path).display().to_string(),
                expected: e.sha256.clone(),
            });
        }
        let path = format!("evidence/{}-{}.jpg", e.kind, e.variant);
        files.push(ManifestFile {
            path: path.clone(),
            kind: e.kind,
            variant: e.variant,
            sha256: e.sha256.clone(),
            bytes: bytes.len() as u64,
            captured_at: format_rfc3339(e.captured_ms),
            score: e.score,
        });
        contents.push((path, bytes));
    }
    let end = v.cleared_ms.unwrap_or(v.last_obstructed_ms);
    let manifest = Manifest {
        format: FORMAT.into(),
        violation: ManifestViolation {
            id: v.id.clone(),
            camera: v.camera.clone(),
            zone: v.zone.clone(),
            start: format_rfc3339(v.start_ms),
            confirmed_at: format_rfc3339(v.confirmed_ms),
            cleared: v.cleared_ms.map(format_rfc3339),
            last_obstructed: format_rfc3339(v.last_obstructed_ms),
            duration_s: (end - v.start_ms) as f64 / 1000.0,
            peak_score: v.peak_score,
            status: v.status,
            end_reason: v.end_reason,
            review_status: v.review_status.clone(),
        },
        zone: ManifestZone {
            id: v.zone.clone(),
            camera: v.camera.clone(),
            polygon: serde_json::from_str(&v.zone_polygon).unwrap_or(serde_json::Value::Null),
        },
        model: ManifestModel {
            name: v.model_name.clone(),
            sha256: v.model_sha256.clone(),
        },
        config_sha256: v.config_sha256.clone(),
        reviews: reviews
            .iter()
            .map(|r| ManifestReview {
                status: r.status.clone(),
                note: r.note.clone(),
                actor: r.actor.clone(),
                role: r.role.clone(),
                at: format_rfc3339(r.at_ms),
            })
            .collect(),
        files,
        exported_at: format_rfc3339(exported_at),
        public_key: key.public_key_hex(),
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
    let signature = key.sign(&manifest_bytes);

    // JPEGs do not compress; storing keeps the ZIP simple to inspect.
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file(MANIFEST, opts)?;
    zip.write_all(&manifest_bytes)?;
    zip.start_file(SIGNATURE, opts)?;
    zip.write_all(base64_encode(&signature).as_bytes())?;
    zip.start_file(PUBLIC_KEY, opts)?;
    zip.write_all(format!("{}\n", key.public_key_hex()).as_bytes())?;
    for (path, bytes) in &contents {
        zip.start_file(path.as_str(), opts)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The outcome of [`verify`]: `problems` is empty when every hash and the
/// signature hold.
#[derive(Debug, Clone, Serialize)]
pub struct BundleReport {
    pub violation: Option<String>,
    pub files_checked: usize,
    /// The key that signed it, hex.
    pub signed_by: Option<String>,
    /// Whether the signer was checked against a key given by the caller
    /// rather than the one the bundle carries.
    pub key_from_caller: bool,
    pub problems: Vec<String>,
}

/// Checks a bundle: the manifest's signature (against `trusted_key` when
/// given, else the key inside the bundle), every listed file's SHA-256 and
/// size, and that the ZIP holds nothing the manifest does not list.
pub fn verify(zip_bytes: &[u8], trusted_key: Option<&str>) -> BundleReport {
    let mut report = BundleReport {
        violation: None,
        files_checked: 0,
        signed_by: None,
        key_from_caller: trusted_key.is_some(),
        problems: Vec::new(),
    };
    let mut archive = match zip::ZipArchive::new(Cursor::new(zip_bytes)) {
        Ok(a) => a,
        Err(e) => {
            report.problems.push(format!("not a readable ZIP: {e}"));
            return report;
        }
    };
    let central: Vec<String> = (0..archive.len())
        .map(|i| {
            archive
                .name_for_index(i)
                .and_then(Result::ok)
                .map(|n| n.into_owned())
                .unwrap_or_default()
        })
        .collect();
    report
        .problems
        .extend(super::zipcheck::problems(zip_bytes, &central));
    let mut read = |name: &str, problems: &mut Vec<String>| -> Option<Vec<u8>> {
        let mut f = match archive.by_name(name) {
            Ok(f) => f,
            Err(_) => {
                problems.push(format!("{name}: missing from the bundle"));
                return None;
            }
        };
        let mut buf = Vec::new();
        match f.read_to_end(&mut buf) {
            Ok(_) => Some(buf),
            Err(e) => {
                problems.push(format!("{name}: unreadable: {e}"));
                None
            }
        }
    };
    let manifest_bytes = read(MANIFEST, &mut report.problems);
    let signature = read(SIGNATURE, &mut report.problems);
    let bundled_key = read(PUBLIC_KEY, &mut report.problems);
    let Some(manifest_bytes) = manifest_bytes else {
        return report;
    };

    // The signature first: it covers everything the manifest says.
    let key_text = match (trusted_key, &bundled_key) {
        (Some(k), _) => Some(k.to_string()),
        (None, Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        (None, None) => None,
    };
    if let (Some(key_text), Some(sig_b64)) = (key_text, &signature) {
        match parse_public_key(&key_text) {
            Err(e) => report.problems.push(format!("public key: {e}")),
            Ok(key) => {
                report.signed_by = Some(hex::encode(key.as_bytes()));
                let sig = {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD
                        .decode(String::from_utf8_lossy(sig_b64).trim())
                        .unwrap_or_default()
                };
                if !verify_signature(&key, &manifest_bytes, &sig) {
                    report.problems.push(if trusted_key.is_some() {
                        "manifest.json: the signature does not hold for the given public key (the manifest was changed, or another key signed it)".to_string()
                    } else {
                        "manifest.json: the signature does not hold (the manifest or manifest.sig was changed)".to_string()
                    });
                }
            }
        }
    }

    let manifest: Manifest = match serde_json::from_slice(&manifest_bytes) {
        Ok(m) => m,
        Err(e) => {
            report
                .problems
                .push(format!("manifest.json: not a {FORMAT} manifest: {e}"));
            return report;
        }
    };
    report.violation = Some(manifest.violation.id.clone());
    if manifest.format != FORMAT {
        report.problems.push(format!(
            "manifest.json: format {:?}, expected {FORMAT:?}",
            manifest.format
        ));
    }
    if let Some(b) = &bundled_key
        && String::from_utf8_lossy(b).trim() != manifest.public_key
    {
        report
            .problems
            .push("public_key.txt: differs from the manifest's public_key".into());
    }

    let mut listed = BTreeSet::from([
        MANIFEST.to_string(),
        SIGNATURE.to_string(),
        PUBLIC_KEY.to_string(),
    ]);
    for f in &manifest.files {
        listed.insert(f.path.clone());
        let Some(bytes) = read(&f.path, &mut report.problems) else {
            continue;
        };
        report.files_checked += 1;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != f.sha256 {
            report.problems.push(format!(
                "{}: SHA-256 {actual} does not match the manifest's {}",
                f.path, f.sha256
            ));
        } else if bytes.len() as u64 != f.bytes {
            report.problems.push(format!(
                "{}: {} bytes, the manifest says {}",
                f.path,
                bytes.len(),
                f.bytes
            ));
        }
    }
    for name in archive.file_names() {
        let name = match name {
            Ok(n) => n.into_owned(),
            Err(e) => {
                report
                    .problems
                    .push(format!("an entry with an unreadable name: {e}"));
                continue;
            }
        };
        if !listed.contains(&name) {
            report
                .problems
                .push(format!("{name}: in the ZIP but not listed in the manifest"));
        }
    }
    report
}
