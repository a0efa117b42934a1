//! API tokens and roles. A token is `flt_<id>_<secret>`: the id finds the
//! row, the secret is kept only as its SHA-256 and compared in constant
//! time. Each endpoint names the roles it takes in [`ENDPOINT_ROLES`].

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::audit::Actor;
use crate::base::time::Millis;
use crate::store::{Store, StoreError, TokenRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A property manager: sees violations and their pictures.
    Viewer,
    /// Reviews violations and exports evidence.
    Officer,
    /// Tunes cameras and zones.
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Officer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Officer => "officer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}; roles: viewer, officer, operator, admin"))
    }
}

pub const ANY_ROLE: &[Role] = &Role::ALL;
pub const OFFICERS: &[Role] = &[Role::Officer, Role::Admin];
pub const ADMINS: &[Role] = &[Role::Admin];
pub const OPERATORS: &[Role] = &[Role::Operator, Role::Admin];

/// Who may call what, by OpenAPI operationId. The handlers check these
/// lists and a test holds the OpenAPI document's `x-roles` to them.
pub const ENDPOINT_ROLES: &[(&str, &[Role])] = &[
    ("getMe", ANY_ROLE),
    ("getMetrics", ANY_ROLE),
    ("listViolations", ANY_ROLE),
    ("getViolation", ANY_ROLE),
    ("getEvidence", ANY_ROLE),
    ("getThumbnail", ANY_ROLE),
    ("exportBundle", OFFICERS),
    ("reviewViolation", OFFICERS),
    ("listAudit", ADMINS),
    ("listCameras", OPERATORS),
    ("getLatestFrame", OPERATORS),
    ("getZone", OPERATORS),
    ("putZone", OPERATORS),
    ("deleteZone", OPERATORS),
    ("listConfigHistory", OPERATORS),
    ("getConfigVersion", OPERATORS),
    ("restoreConfigVersion", OPERATORS),
    ("getCluster", ADMINS),
];

/// The roles an operation takes.
pub fn roles_of(operation: &str) -> &'static [Role] {
    ENDPOINT_ROLES
        .iter()
        .find(|(op, _)| *op == operation)
        .map(|(_, r)| *r)
        .unwrap_or(&[])
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Caller {
    pub id: String,
    pub name: String,
    pub role: Role,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor {
            name: self.name.clone(),
            token: self.id.clone(),
            role: self.role.to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization: Bearer token")]
    Missing,
    #[error("the token is malformed (expected flt_<id>_<secret>)")]
    Malformed,
    #[error("unknown or revoked token")]
    Rejected,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A newly created token; `secret` is shown once and never stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub row: TokenRow,
    pub token: String,
}

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub async fn create_token(
    store: &Store,
    name: &str,
    role: Role,
    now: Millis,
) -> Result<NewToken, StoreError> {
    let mut id_bytes = [0u8; 4];
    rand::fill(&mut id_bytes);
    let mut secret_bytes = [0u8; 32];
    rand::fill(&mut secret_bytes);
    let id = hex::encode(id_bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
    let row = TokenRow {
        id: id.clone(),
        name: name.to_string(),
        role: role.to_string(),
        secret_sha256: secret_hash(&secret),
        created_ms: now,
        revoked_ms: None,
    };
    store.insert_token(&row).await?;
    Ok(NewToken {
        row,
        token: format!("flt_{id}_{secret}"),
    })
}

/// Checks an `Authorization` header value.
pub async fn authenticate(store: &Store, header: Option<&str>) -> Result<Caller, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let token = header
        .strip_prefix("Bearer ")
        .ok_or(AuthError::Missing)?
        .trim();
    let (id, secret) = token
        .strip_prefix("flt_")
        .and_then(|rest| rest.split_once('_'))
        .filter(|(id, s)| id.len() == 8 && !s.is_empty())
        .ok_or(AuthError::Malformed)?;
    let row = store.token(id).await?.ok_or(AuthError::Rejected)?;
    let presented = secret_hash(secret);
    let matches: bool = presented
        .as_bytes()
        .ct_eq(row.secret_sha256.as_bytes())
        .into();
    if !matches || row.revoked_ms.is_some() {
        return Err(AuthError::Rejected);
    }
    let role = row.role.parse().map_err(|_| AuthError::Rejected)?;
    Ok(Caller {
        id: row.id,
        name: row.name,
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_authenticate_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::open(&url).await.unwrap();
        let t = create_token(&store, "alice", Role::Officer, 5)
            .await
            .unwrap();
        assert!(t.token.starts_with(&format!("flt_{}_", t.row.id)));
        // Only the hash is stored.
        let stored = store.token(&t.row.id).await.unwrap().unwrap();
        assert!(!t.token.contains(&stored.secret_sha256));

        let bearer = format!("Bearer {}", t.token);
        let caller = authenticate(&store, Some(&bearer)).await.unwrap();
        assert_eq!(caller.name, "alice");
        assert_eq!(caller.role, Role::Officer);

        let wrong = format!("Bearer {}x", t.token);
        assert!(matches!(
            authenticate(&store, Some(&wrong)).await,
            Err(AuthError::Rejected)
        ));
        assert!(matches!(
            authenticate(&store, Some("Bearer nonsense")).await,
            Err(AuthError::Malformed)
        ));
        assert!(matches!(
            authenticate(&store, None).await,
            Err(AuthError::Missing)
        ));
        assert!(store.revoke_token(&t.row.id, 9).await.unwrap());
        assert!(!store.revoke_token(&t.row.id, 10).await.unwrap());
        assert!(matches!(
            authenticate(&store, Some(&bearer)).await,
            Err(AuthError::Rejected)
        ));
    }

    #[test]
    fn openapi_roles_match_the_server() {
        let doc: serde_json::Value = serde_json::from_str(super::super::OPENAPI).unwrap();
        let mut seen = Vec::new();
        for (_path, item) in doc["paths"].as_object().unwrap() {
            for (_method, op) in item.as_object().unwrap() {
                let Some(id) = op.get("operationId").and_then(|v| v.as_str()) else {
                    continue;
                };
                let documented: Vec<&str> = op["x-roles"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap())
                    .collect();
                let public = op
                    .get("security")
                    .is_some_and(|s| s == &serde_json::json!([]));
                if public {
                    assert!(documented.is_empty(), "{id} is public but lists roles");
                    continue;
                }
                let served: Vec<&str> = roles_of(id).iter().map(|r| r.as_str()).collect();
                assert_eq!(documented, served, "roles of {id}");
                seen.push(id.to_string());
            }
        }
        for (op, _) in ENDPOINT_ROLES {
            assert!(
                seen.iter().any(|s| s == op),
                "{op} missing from openapi.json"
            );
        }
    }
}
