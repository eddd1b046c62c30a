//! Local verification: keys and revocations held in this process, kept current by the
//! AuthService's watch streams.

use crate::{Claims, Client, Config, Rejection, SetupError};
use latchkey_core::denylist::{Denylist, RevocationEvent, RevokedKind};
use latchkey_core::error::{AuthError, Reason};
use latchkey_core::keys::KeyRing;
use latchkey_core::token;
use latchkey_proto::v1 as pb;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// At most one JWKS refetch for an unknown `kid` per this interval, so a flood of forged
/// `kid`s cannot turn into a flood of calls.
const REFETCH_INTERVAL: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(crate) struct LocalState {
    /// The two watch tasks, stopped when this is dropped.
    followers: [tokio::task::AbortHandle; 2],
    keys: Arc<RwLock<Arc<KeyRing>>>,
    denylist: Arc<Denylist>,
    sync: Arc<RevocationSync>,
    last_refetch: Mutex<Option<Instant>>,
    client: Client,
}

/// Whether the revocations held here are complete: the stream has delivered a whole
/// snapshot and is still open, or closed only a moment ago.
#[derive(Default)]
struct RevocationSync {
    state: Mutex<SyncState>,
    first: tokio::sync::Notify,
}

#[derive(Default, Clone, Copy)]
enum SyncState {
    /// No complete snapshot yet.
    #[default]
    Unknown,
    /// Following live events.
    Live,
    /// The stream closed at this instant; events may be missed from then on.
    LostAt(Instant),
}

impl RevocationSync {
    fn set(&self, state: SyncState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
        if matches!(state, SyncState::Live) {
            self.first.notify_waiters();
        }
    }

    fn is_live(&self) -> bool {
        matches!(
            *self.state.lock().unwrap_or_else(|p| p.into_inner()),
            SyncState::Live
        )
    }

    /// Why tokens cannot be trusted now, if they cannot: no snapshot yet, or the stream has
    /// been down for longer than `staleness`.
    fn refusal(&self, staleness: Duration) -> Option<&'static str> {
        match *self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            SyncState::Unknown => Some("revocations not yet received"),
            SyncState::Live => None,
            SyncState::LostAt(at) if at.elapsed() > staleness => Some("revocation stream lost"),
            SyncState::LostAt(_) => None,
        }
    }
}

fn ring(doc: &pb::JsonDocument) -> Result<KeyRing, String> {
    let jwks: serde_json::Value = serde_json::from_str(&doc.json).map_err(|e| e.to_string())?;
    KeyRing::from_jwks(&jwks)
}

fn event(ev: pb::RevocationEvent) -> Option<RevocationEvent> {
    Some(RevocationEvent {
        kind: RevokedKind::parse(&ev.kind)?,
        id: ev.id,
        subject: ev.subject,
        revoked_at: ev.revoked_at,
        expires_at: ev.expires_at,
        client_id: None,
    })
}

impl LocalState {
    /// Fetches the keys, and returns once the revocations in force have arrived (or fails
    /// after `wait`).
    pub async fn start(mut client: Client, wait: Duration) -> Result<Self, SetupError> {
        let jwks = client.get_jwks(pb::GetJwksRequest {}).await?.into_inner();
        let keys = Arc::new(RwLock::new(Arc::new(
            ring(&jwks).map_err(SetupError::Config)?,
        )));
        let denylist = Arc::new(Denylist::default());
        let sync = Arc::new(RevocationSync::default());
        let followers;
        {
            // Created before the stream starts, so the first snapshot cannot slip past it.
            let first = sync.first.notified();
            followers = [
                tokio::spawn(follow_keys(client.clone(), keys.clone())).abort_handle(),
                tokio::spawn(follow_revocations(
                    client.clone(),
                    denylist.clone(),
                    sync.clone(),
                ))
                .abort_handle(),
            ];
            if !sync.is_live() && tokio::time::timeout(wait, first).await.is_err() {
                followers.iter().for_each(|f| f.abort());
                return Err(SetupError::Config(format!(
                    "no revocation snapshot from the AuthService within {wait:?}"
                )));
            }
        }
        Ok(Self {
            followers,
            keys,
            denylist,
            sync,
            last_refetch: Mutex::new(None),
            client,
        })
    }

    fn current(&self) -> Arc<KeyRing> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Refetches the JWKS if the last refetch is old enough; returns whether it did.
    async fn refetch(&self) -> bool {
        {
            let mut last = self.last_refetch.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < REFETCH_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match self.client.clone().get_jwks(pb::GetJwksRequest {}).await {
            Ok(doc) => match ring(&doc.into_inner()) {
                Ok(r) => {
                    *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(r);
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring a malformed JWKS");
                    false
                }
            },
            Err(e) => {
                tracing::warn!(error = %e.message(), "JWKS refetch failed");
                false
            }
        }
    }

    pub async fn verify(
        &self,
        config: &Config,
        token: &str,
        required: &[String],
    ) -> Result<Claims, Rejection> {
        // Fail closed: without every revocation in force, a revoked token could pass.
        if let Some(why) = self.sync.refusal(config.revocation_staleness) {
            return Err(Rejection::Unavailable(why.into()));
        }
        let now = chrono::Utc::now().timestamp();
        let check =
            |ring: &KeyRing| token::verify(ring, token, &config.issuer, now, config.leeway_secs);
        let claims = match check(&self.current()) {
            Err(AuthError::InvalidToken(Reason::UnknownSigningKey)) if self.refetch().await => {
                check(&self.current())
            }
            other => other,
        }
        .map_err(|e| Rejection::InvalidToken(e.description()))?;
        if self.denylist.is_revoked(&claims) {
            return Err(Rejection::InvalidToken("token revoked".into()));
        }
        token::check_for_resource(&claims, &config.resource, required).map_err(|e| match e {
            AuthError::InsufficientScope(_) => Rejection::InsufficientScope,
            e => Rejection::InvalidToken(e.description()),
        })?;
        let scopes: Vec<String> = claims
            .scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Claims {
            subject: crate::Subject::of(&claims.sub, &claims.client_id),
            sub: claims.sub,
            client_id: claims.client_id,
            scopes,
            aud: claims.aud,
            exp: claims.exp,
            jti: claims.jti,
        })
    }
}

impl Drop for LocalState {
    fn drop(&mut self) {
        self.followers.iter().for_each(|f| f.abort());
    }
}

/// Replaces the key ring on every `WatchKeys` message; reconnects with a bounded backoff.
async fn follow_keys(client: Client, keys: Arc<RwLock<Arc<KeyRing>>>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match client.clone().watch_keys(pb::WatchKeysRequest {}).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                backoff = Duration::from_millis(200);
                while let Ok(Some(doc)) = stream.message().await {
                    match ring(&doc) {
                        Ok(r) => *keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(r),
                        Err(e) => tracing::warn!(error = %e, "ignoring a malformed JWKS"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e.message(), "WatchKeys failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Applies every `WatchRevocationUpdates` event and tracks whether the set is complete;
/// reconnects with a bounded backoff (the snapshot sent on reconnect covers anything missed).
async fn follow_revocations(client: Client, denylist: Arc<Denylist>, sync: Arc<RevocationSync>) {
    use pb::revocation_update::Update;
    let mut backoff = Duration::from_millis(200);
    loop {
        match client
            .clone()
            .watch_revocation_updates(pb::WatchRevocationsRequest {})
            .await
        {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                backoff = Duration::from_millis(200);
                while let Ok(Some(update)) = stream.message().await {
                    match update.update {
                        Some(Update::Event(ev)) => {
                            if let Some(ev) = event(ev) {
                                denylist.apply(&ev);
                            }
                        }
                        Some(Update::SnapshotComplete(_)) => sync.set(SyncState::Live),
                        None => {}
                    }
                    denylist.purge(chrono::Utc::now().timestamp());
                }
                tracing::warn!("WatchRevocationUpdates closed; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e.message(), "WatchRevocationUpdates failed"),
        }
        if sync.is_live() {
            sync.set(SyncState::LostAt(Instant::now()));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refused_until_the_snapshot_and_after_the_stream_is_lost_too_long() {
        let sync = RevocationSync::default();
        let staleness = Duration::from_millis(50);
        assert_eq!(
            sync.refusal(staleness),
            Some("revocations not yet received")
        );
        sync.set(SyncState::Live);
        assert_eq!(sync.refusal(staleness), None);
        sync.set(SyncState::LostAt(Instant::now()));
        assert_eq!(sync.refusal(staleness), None, "a short outage is tolerated");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(sync.refusal(staleness), Some("revocation stream lost"));
        sync.set(SyncState::Live);
        assert_eq!(sync.refusal(staleness), None, "back once reconnected");
    }
}
