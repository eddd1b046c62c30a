//! The one maintenance task of a replica: it follows revocations (Redis pub/sub when
//! configured, and a database poll in any case) and changed clients and resources, publishes
//! and reloads signing keys, writes usage figures in batches, and deletes what can no longer
//! be used. It calls core methods, on the core's clock.
//!
//! A failure is logged with its whole cause chain: the operator needs the cause, not the
//! client-safe text.

use crate::startup::Application;
use latchkey_core::{AuthCore, AuthError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How far back each poll looks again. An event's `revoked_at` comes from the publishing
/// replica's clock and is set before its insert commits, so a publisher whose clock is
/// behind, or a slow commit, can land an event behind the last poll; events already applied
/// are skipped by id, so the overlap costs only a re-read of the last minute's events.
const POLL_OVERLAP_SECS: i64 = 60;

/// How often usage figures are written and expired rows deleted: the figures are at most this
/// stale.
const HOUSEKEEPING: std::time::Duration = std::time::Duration::from_secs(60);

/// Writes the usage counted since the last time, and deletes what can no longer be used:
/// expired codes, refresh tokens, grants, initial access tokens, revocation events and
/// sessions, and self-registered clients gone unused.
async fn keep_house(core: &AuthCore) {
    if let Err(e) = core.flush_usage().await {
        tracing::warn!(error = %cause(&e), "writing usage figures failed");
    }
    match core.purge_expired(false).await {
        Ok(gone) if gone.idle_clients > 0 => tracing::info!(
            idle_clients = gone.idle_clients,
            ?gone,
            "deleted self-registered clients gone unused, and expired rows"
        ),
        Ok(gone) => tracing::debug!(?gone, "expired rows deleted"),
        Err(e) => tracing::warn!(error = %cause(&e), "deleting expired rows failed"),
    }
}

/// The operator's view of a failure: the internal cause and its sources, or the OAuth text.
pub fn cause(e: &AuthError) -> String {
    match e {
        AuthError::Internal(source) => {
            let mut out = source.to_string();
            let mut next = source.source();
            while let Some(s) = next {
                out.push_str(": ");
                out.push_str(&s.to_string());
                next = s.source();
            }
            out
        }
        e => format!("{}: {}", e.code(), e.description()),
    }
}

/// Starts the maintenance task (and the Redis subscription) until `stop`.
pub fn spawn(app: &Application, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Some(redis) = app.redis.clone() {
        let denylist = app.core.denylist().clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            redis.subscribe_revocations(denylist, stop).await
        }));
    }
    let core = app.core.clone();
    let poll = app.revocation_poll;
    let key_reload = app.key_reload;
    let mut stop = stop;
    tasks.push(tokio::spawn(async move {
        let mut since = core.now().timestamp() - POLL_OVERLAP_SECS;
        let mut revocations = tokio::time::interval(poll);
        let mut keys = tokio::time::interval(key_reload);
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        loop {
            tokio::select! {
                _ = revocations.tick() => {
                    let started = core.now().timestamp();
                    let polled = core.sync_revocations(since).await;
                    let read = core.sync_directory(since).await;
                    match (polled, read) {
                        (Ok(_), Ok(_)) => since = started - POLL_OVERLAP_SECS,
                        // The store has said once that the database is unreachable; a line
                        // per poll would add nothing.
                        (Err(AuthError::TemporarilyUnavailable(_)), _)
                        | (_, Err(AuthError::TemporarilyUnavailable(_))) => {
                            tracing::debug!("revocation poll skipped: the database is unavailable");
                        }
                        (Err(e), _) => tracing::warn!(error = %cause(&e), "revocation poll failed"),
                        (_, Err(e)) => tracing::warn!(error = %cause(&e), "reading changed clients and resources failed"),
                    }
                }
                _ = keys.tick() => maintain_keys(&core).await,
                _ = housekeeping.tick() => keep_house(&core).await,
                _ = stop.changed() => return,
            }
        }
    }));
    tasks
}

/// Publishes the next key when rotation is due, picks up keys other replicas published,
/// retires expired ones, and reports the signing key's age.
async fn maintain_keys(core: &AuthCore) {
    match core.rotate_if_due().await {
        Ok(Some(kid)) => tracing::info!(%kid, "scheduled key rotation: next key published"),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %cause(&e), "scheduled key rotation failed"),
    }
    if let Err(e) = core.reload_keys().await {
        tracing::warn!(error = %cause(&e), "reloading signing keys failed");
    }
    let now = core.now().timestamp();
    if let Some(since) = core.keys().active_since(now) {
        metrics::gauge!("latchkey_signing_key_age_seconds").set((now - since) as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Io;

    #[derive(Debug, thiserror::Error)]
    #[error("pool timed out")]
    struct Pool(#[source] Io);

    #[test]
    fn the_operator_sees_the_whole_cause_and_the_client_does_not() {
        let e = AuthError::internal(Pool(Io));
        assert_eq!(cause(&e), "pool timed out: connection refused");
        assert_eq!(e.description(), "the server failed to process the request");
    }
}
