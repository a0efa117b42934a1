//! The audit log: every evidence access and review, append-only and
//! hash-chained. Each entry's hash covers its fields and the previous
//! entry's hash, so editing or deleting an entry breaks every hash after it;
//! [`verify`] walks the chain and names the first entry that does not hold.

use serde::Serialize;
use tokio::sync::Mutex;

use crate::base::time::Millis;
pub use crate::store::{AuditDraft, GENESIS, entry_hash};
use crate::store::{AuditRow, Store, StoreError};

/// Who did something: an API token, or a local command.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Actor {
    pub name: String,
    /// Token id, or `local` for a command run on the host.
    pub token: String,
    pub role: String,
}

impl Actor {
    /// An entry by this actor, to chain with the change it records.
    pub fn draft(
        &self,
        action: &str,
        target: &str,
        detail: serde_json::Value,
        at_ms: Millis,
    ) -> AuditDraft {
        AuditDraft {
            at_ms,
            actor: self.name.clone(),
            actor_token: self.token.clone(),
            role: self.role.clone(),
            action: action.to_string(),
            target: target.to_string(),
            detail,
        }
    }

    /// A command run on the host (`firelane evidence export`).
    pub fn local() -> Actor {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Actor {
            name: format!("local:{user}"),
            token: "local".into(),
            role: "local".into(),
        }
    }
}

/// Appends entries. One per process is enough: the mutex orders this
/// process's writers, and the primary key on `seq` turns a race with another
/// process (a CLI export while the daemon runs) into a retry.
#[derive(Default)]
pub struct AuditLog {
    lock: Mutex<()>,
}

impl AuditLog {
    pub async fn record(
        &self,
        store: &Store,
        actor: &Actor,
        action: &str,
        target: &str,
        detail: serde_json::Value,
        at_ms: Millis,
    ) -> Result<AuditRow, StoreError> {
        let _guard = self.lock.lock().await;
        store
            .append_audit(&actor.draft(action, target, detail, at_ms))
            .await
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainReport {
    pub entries: u64,
    /// Hash of the last entry; keep it somewhere else to detect a cut tail.
    pub head: String,
    /// Empty when the chain holds.
    pub problems: Vec<String>,
}

/// Walks the whole log in order and checks each link.
pub async fn verify(store: &Store) -> Result<ChainReport, StoreError> {
    let mut report = ChainReport {
        entries: 0,
        head: GENESIS.to_string(),
        problems: Vec::new(),
    };
    let mut expected_seq = 1;
    let mut after = 0;
    loop {
        let page = store.audit_entries(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            report.entries += 1;
            if e.seq != expected_seq {
                report.problems.push(format!(
                    "entry {}: expected entry {expected_seq} here; entries {expected_seq}..{} are missing",
                    e.seq,
                    e.seq - 1
                ));
            }
            if e.prev_hash != report.head {
                report.problems.push(format!(
                    "entry {}: prev_hash {} does not match the hash of the entry before it ({})",
                    e.seq,
                    short(&e.prev_hash),
                    short(&report.head)
                ));
            }
            let actual = entry_hash(e);
            if actual != e.hash {
                report.problems.push(format!(
                    "entry {} ({} {} by {}): content does not match its hash (stored {}, computed {})",
                    e.seq,
                    e.action,
                    e.target,
                    e.actor,
                    short(&e.hash),
                    short(&actual)
                ));
            }
            report.head = e.hash.clone();
            expected_seq = e.seq + 1;
        }
    }
    Ok(report)
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display());
        let store = Store::open(&url).await.unwrap();
        (dir, store)
    }

    fn alice() -> Actor {
        Actor {
            name: "alice".into(),
            token: "0a1b2c3d".into(),
            role: "officer".into(),
        }
    }

    #[tokio::test]
    async fn chain_holds_and_detects_edits_and_deletions() {
        let (_dir, store) = store().await;
        let log = AuditLog::default();
        for i in 0..4 {
            let detail = serde_json::json!({"kind": "first", "n": i});
            log.record(&store, &alice(), "evidence.view", "v-1", detail, 1000 + i)
                .await
                .unwrap();
        }
        let ok = verify(&store).await.unwrap();
        assert_eq!(ok.entries, 4);
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        assert_ne!(ok.head, GENESIS);

        // Edit one entry's target in place.
        sqlx::query("UPDATE audit_log SET target = 'v-2' WHERE seq = 2")
            .execute(store.pool())
            .await
            .unwrap();
        let edited = verify(&store).await.unwrap();
        assert_eq!(edited.problems.len(), 1, "{:?}", edited.problems);
        assert!(edited.problems[0].starts_with("entry 2 (evidence.view v-2 by alice)"));

        // Put it back, then delete entry 3.
        sqlx::query("UPDATE audit_log SET target = 'v-1' WHERE seq = 2")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(verify(&store).await.unwrap().problems.is_empty());
        sqlx::query("DELETE FROM audit_log WHERE seq = 3")
            .execute(store.pool())
            .await
            .unwrap();
        let cut = verify(&store).await.unwrap();
        assert!(
            cut.problems
                .iter()
                .any(|p| p.contains("entries 3..3 are missing")),
            "{:?}",
            cut.problems
        );
        assert!(cut.problems.iter().any(|p| p.contains("prev_hash")));

        // A new entry after the cut chains onto the current head, so the
        // gap stays visible.
        let next = log
            .record(
                &store,
                &alice(),
                "review",
                "v-1",
                serde_json::json!({}),
                2000,
            )
            .await
            .unwrap();
        assert_eq!(next.seq, 5);
    }
}
