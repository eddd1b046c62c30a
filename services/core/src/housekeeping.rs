//! Housekeeping and figures: what no longer matters is deleted, and what each client uses is
//! counted. Usage is counted in memory on the request path and written in batches by the
//! maintenance task, so no request waits on it; the stored figures are at most one batch
//! interval stale.

use crate::AuthCore;
use crate::error::AuthResult;
use crate::store::{ClientUsage, Expired, StoreStats};
use std::collections::HashMap;
use std::sync::Mutex;

/// Distinct clients counted between two batches; past this, new ones are not counted until
/// the next batch (a bound on memory: these are figures, not a ledger).
const MAX_PENDING_CLIENTS: usize = 100_000;

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

impl AuthCore {
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

    /// Deletes what can no longer be used (or, with `dry_run`, counts it).
    pub async fn purge_expired(&self, dry_run: bool) -> AuthResult<Expired> {
        Ok(self
            .stores
            .maintenance
            .purge_expired(self.clock.now(), dry_run)
            .await?)
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
