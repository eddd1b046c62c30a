//! Housekeeping and figures: what no longer matters is deleted, and what each client uses is
//! counted. Usage is counted in memory on the request path and written in batches by the
//! maintenance task, so no request waits on it; the stored figures are at most one batch
//! interval stale.

use crate::AuthCore;
use crate::error::AuthResult;
use crate::store::{ClientUsage, Expired, StoreStats};
use chrono::DateTime;
use std::collections::HashMap;
use std::sync::Mutex;

/// Distinct clients counted between two batches; past this, new ones are not counted until
/// the next batch (a bound on memory: these are figures, not a ledger).
const MAX_PENDING_CLIENTS: usize = 100_000;

/// Idle clients deleted per purge; maintenance purges every minute, so a backlog clears at
/// this many a minute without one long pass.
const IDLE_CLIENTS_PER_BATCH: u64 = 500;

/// Usage not yet written: per client, tokens issued and the last use.
#[derive(Default)]
pub(crate) struct Usage(Mutex<HashMap<String, (u64, i64)>>);

impl Usage {
    fn record(&self, client_id: &str, at: i64) {
        let mut pending = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() >= MAX_PENDING_CLIENTS && !pending.contains_key(client_id) {
            return;
        }
        let e = pending.entry(client_id.to_owned()).or_insert((0, at));
        e.0 += 1;
        e.1 = e.1.max(at);
    }

    /// Puts back a batch that could not be written, merged with what was counted since.
    fn put_back(&self, batch: Vec<ClientUsage>) {
        let mut pending = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for u in batch {
            if pending.len() >= MAX_PENDING_CLIENTS && !pending.contains_key(&u.client_id) {
                continue;
            }
            let e = pending.entry(u.client_id).or_insert((0, u.last_used_at));
            e.0 += u.tokens_issued;
            e.1 = e.1.max(u.last_used_at);
        }
    }

    fn take(&self) -> Vec<ClientUsage> {
        let pending = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        pending
            .into_iter()
            .map(|(client_id, (tokens_issued, last_used_at))| ClientUsage {
                client_id,
                tokens_issued,
                last_used_at,
            })
            .collect()
    }
}

/// Self-registered clients whose first use this replica has written.
#[derive(Default)]
pub(crate) struct FirstUses(Mutex<std::collections::HashSet<String>>);

impl AuthCore {
    /// Writes the first use of a `dynamic` client at once, not in the next batch: a client
    /// never used may give way to a new registration at the bound, or be deleted after a day,
    /// and one that has just started an authorization must not. Once per client and replica;
    /// a failed write is tried again on the next use, and never fails the request.
    pub(crate) async fn mark_first_use(&self, client: &crate::model::Client) {
        if client.tier != crate::model::ClientTier::Dynamic {
            return;
        }
        if self
            .first_uses
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&client.id)
        {
            return;
        }
        let first = ClientUsage {
            client_id: client.id.clone(),
            tokens_issued: 0,
            last_used_at: self.clock.now().timestamp(),
        };
        match self.stores.maintenance.record_usage(&[first]).await {
            Ok(()) => {
                let mut seen = self.first_uses.0.lock().unwrap_or_else(|p| p.into_inner());
                if seen.len() >= MAX_PENDING_CLIENTS {
                    seen.clear();
                }
                seen.insert(client.id.clone());
            }
            Err(e) => {
                tracing::warn!(error = %e, client_id = %client.id, "the first use of a client was not written; it is tried again on its next use")
            }
        }
    }

    /// Counts a token issued to `client_id` now. Memory only.
    pub(crate) fn count_use(&self, client_id: &str) {
        self.usage.record(client_id, self.clock.now().timestamp());
    }

    /// Writes the usage counted since the last call. Returns how many clients it covered.
    ///
    /// While the database is unavailable the batch is kept for the next call: the last use of
    /// a client decides when an unused one expires, so an outage must not erase it. Any other
    /// failure loses the batch, which costs figures, never a decision.
    pub async fn flush_usage(&self) -> AuthResult<usize> {
        let batch = self.usage.take();
        match self.stores.maintenance.record_usage(&batch).await {
            Ok(()) => Ok(batch.len()),
            Err(e @ crate::store::StoreError::DatabaseUnavailable { .. }) => {
                self.usage.put_back(batch);
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes what can no longer be used (or, with `dry_run`, counts it): `dynamic` clients
    /// gone unused (see [`Self::purge_idle_clients`]), expired rows in the store, and expired
    /// authorization sessions.
    pub async fn purge_expired(&self, dry_run: bool) -> AuthResult<Expired> {
        // This replica's unwritten usage first: a client used a moment ago is not idle.
        self.flush_usage().await?;
        let idle_clients = self.purge_idle_clients(dry_run).await?;
        let now = self.clock.now();
        let mut gone = self.stores.maintenance.purge_expired(now, dry_run).await?;
        gone.idle_clients = idle_clients;
        gone.sessions = self.sessions.purge_expired(now, dry_run).await?;
        Ok(gone)
    }

    /// Deletes the `dynamic` clients unused for the configured time, or never used for the
    /// shorter one after registering, that hold no live refresh token (nor a code waiting to
    /// be redeemed), at most a batch per call. Each goes
    /// as an operator's deletion does: with everything issued to it, and a revocation of its
    /// access tokens on every replica. Its next request at `/token` is answered 401
    /// `invalid_client`, and `/authorize` tells the user it must register again: MCP clients
    /// then register anew. Returns how many were (or, with `dry_run`, would be) deleted.
    async fn purge_idle_clients(&self, dry_run: bool) -> AuthResult<u64> {
        let (idle, unused) = (
            self.settings.dynamic_client_idle,
            self.settings.dynamic_client_unused,
        );
        if idle.is_none() && unused.is_none() {
            return Ok(0);
        }
        let now = self.clock.now();
        // A rule that is off selects nothing: nothing was created before the epoch.
        let since = |d: Option<chrono::Duration>| d.map_or(DateTime::UNIX_EPOCH, |d| now - d);
        let idle_ids = self
            .stores
            .maintenance
            .idle_dynamic_clients(since(idle), since(unused), now, IDLE_CLIENTS_PER_BATCH)
            .await?;
        if dry_run {
            return Ok(idle_ids.len() as u64);
        }
        let mut deleted = 0;
        for id in idle_ids {
            if self.delete_client(&id).await? {
                deleted += 1;
                crate::audit::Audit {
                    event: "client_deleted",
                    outcome: "success",
                    client_id: &id,
                    client_tier: crate::model::ClientTier::Dynamic.as_str(),
                    detail: "idle",
                    ..Default::default()
                }
                .emit();
            }
        }
        Ok(deleted)
    }

    /// Figures for an operator, with this replica's unwritten usage written first.
    pub async fn stats(&self) -> AuthResult<StoreStats> {
        self.flush_usage().await?;
        Ok(self.stores.maintenance.stats(self.clock.now()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_adds_up_per_client_and_keeps_the_last_use() {
        let u = Usage::default();
        u.record("a", 10);
        u.record("a", 30);
        u.record("a", 20);
        u.record("b", 5);
        let mut batch = u.take();
        batch.sort_by(|x, y| x.client_id.cmp(&y.client_id));
        assert_eq!(
            batch,
            vec![
                ClientUsage {
                    client_id: "a".into(),
                    tokens_issued: 3,
                    last_used_at: 30
                },
                ClientUsage {
                    client_id: "b".into(),
                    tokens_issued: 1,
                    last_used_at: 5
                },
            ]
        );
        assert!(u.take().is_empty(), "taken once");
    }

    #[test]
    fn a_batch_put_back_adds_to_what_was_counted_since() {
        let u = Usage::default();
        u.record("a", 10);
        let batch = u.take();
        u.record("a", 40);
        u.record("b", 5);
        u.put_back(batch);
        let mut again = u.take();
        again.sort_by(|x, y| x.client_id.cmp(&y.client_id));
        assert_eq!(
            again,
            vec![
                ClientUsage {
                    client_id: "a".into(),
                    tokens_issued: 2,
                    last_used_at: 40
                },
                ClientUsage {
                    client_id: "b".into(),
                    tokens_issued: 1,
                    last_used_at: 5
                },
            ]
        );
    }
}
