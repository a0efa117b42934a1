//! Queries for enforcement: filtered violation pages, reviews, API tokens
//! and the raw audit-log rows (the hash chain itself is kept by the audit module).

use sqlx::Row;

use super::{Store, StoreError, VIOLATION_COLUMNS, ViolationRow, violation_from_row};
use crate::base::time::Millis;

/// Filters for [`Store::violation_page`]; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct ViolationFilter {
    pub camera: Option<String>,
    pub zone: Option<String>,
    pub status: Option<String>,
    pub review_status: Option<String>,
    /// Start at or after.
    pub from_ms: Option<Millis>,
    /// Start before.
    pub to_ms: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRow {
    pub violation_id: String,
    pub status: String,
    pub note: String,
    pub actor: String,
    pub actor_token: String,
    pub role: String,
    pub at_ms: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub secret_sha256: String,
    pub created_ms: Millis,
    pub revoked_ms: Option<Millis>,
}

enum Bind {
    Text(String),
    Int(i64),
}

impl ViolationFilter {
    /// `WHERE ...` with `$n` placeholders, and the values to bind in order.
    fn sql(&self) -> (String, Vec<Bind>) {
        let mut clauses = Vec::new();
        let mut binds = Vec::new();
        let mut text = |column: &str, value: &Option<String>| {
            if let Some(v) = value {
                binds.push(Bind::Text(v.clone()));
                clauses.push(format!("{column} = ${}", binds.len()));
            }
        };
        text("camera", &self.camera);
        text("zone", &self.zone);
        text("status", &self.status);
        text("review_status", &self.review_status);
        if let Some(v) = self.from_ms {
            binds.push(Bind::Int(v));
            clauses.push(format!("start_ms >= ${}", binds.len()));
        }
        if let Some(v) = self.to_ms {
            binds.push(Bind::Int(v));
            clauses.push(format!("start_ms < ${}", binds.len()));
        }
        let sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        (sql, binds)
    }
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.as_str()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    q
}

impl Store {
    /// One page of matching violations, newest start first, and the total
    /// number that match.
    pub async fn violation_page(
        &self,
        filter: &ViolationFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<ViolationRow>, i64), StoreError> {
        let (filter_sql, binds) = filter.sql();
        let count_sql = format!("SELECT COUNT(*) AS n FROM violations {filter_sql}");
        let total: i64 = bind_all(sqlx::query(sqlx::AssertSqlSafe(count_sql)), &binds)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let n = binds.len();
        let page_sql = format!(
            "SELECT {VIOLATION_COLUMNS} FROM violations {filter_sql} ORDER BY start_ms DESC, id LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(page_sql)), &binds)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        let items = rows
            .iter()
            .map(violation_from_row)
            .collect::<Result<_, _>>()?;
        Ok((items, total))
    }

    /// A violation's reviews, oldest first.
    pub async fn reviews(&self, violation_id: &str) -> Result<Vec<ReviewRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT violation_id, status, note, actor, actor_token, role, at_ms FROM reviews
             WHERE violation_id = $1 ORDER BY id",
        )
        .bind(violation_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReviewRow {
                    violation_id: r.try_get("violation_id")?,
                    status: r.try_get("status")?,
                    note: r.try_get("note")?,
                    actor: r.try_get("actor")?,
                    actor_token: r.try_get("actor_token")?,
                    role: r.try_get("role")?,
                    at_ms: r.try_get("at_ms")?,
                })
            })
            .collect()
    }

    pub async fn insert_token(&self, t: &TokenRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, secret_sha256, created_ms, revoked_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.role)
        .bind(&t.secret_sha256)
        .bind(t.created_ms)
        .bind(t.revoked_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn token(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, role, secret_sha256, created_ms, revoked_ms FROM api_tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(token_from_row).transpose()?)
    }

    /// All tokens, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, role, secret_sha256, created_ms, revoked_ms FROM api_tokens ORDER BY created_ms, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(token_from_row).collect::<Result<_, _>>()?)
    }

    /// Marks a token revoked; false when there is no such live token.
    pub async fn revoke_token(&self, id: &str, at_ms: Millis) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE api_tokens SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL",
        )
        .bind(at_ms)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }
}

fn token_from_row(r: &sqlx::any::AnyRow) -> Result<TokenRow, sqlx::Error> {
    Ok(TokenRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        secret_sha256: r.try_get("secret_sha256")?,
        created_ms: r.try_get("created_ms")?,
        revoked_ms: r.try_get("revoked_ms")?,
    })
}
