//! The in-memory revocation state every replica keeps, so that checking an access token
//! touches no database.
//!
//! Every revocation is an event (a token, a grant, a user, or a client), stored in the
//! database and fanned out to every replica (Redis pub/sub when configured, and a database
//! poll as the backstop that also serves a restarted replica). An event lives only until every
//! access token it could affect has expired on its own.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::RwLock;
use tokio::sync::broadcast;

use crate::token::AccessTokenClaims;

/// What a revocation event revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokedKind {
    /// One access token, by `jti`.
    Token,
    /// Every token of one grant (`sid`): a refresh family, or the tokens of a replayed code.
    Grant,
    /// Every token issued to one user (`sub`) up to the event.
    User,
    /// Every token issued to one client (`client_id`) up to the event.
    Client,
}

impl RevokedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Grant => "grant",
            Self::User => "user",
            Self::Client => "client",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Token, Self::Grant, Self::User, Self::Client]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationEvent {
    /// Unique, so that the same event arriving by pub/sub and by poll is applied once.
    pub id: String,
    pub kind: RevokedKind,
    pub subject: String,
    /// Unix seconds. Tokens issued at or before this instant are revoked.
    pub revoked_at: i64,
    /// Unix seconds after which no token the event affects can still be valid.
    pub expires_at: i64,
    /// The client whose request made the event (a revocation it asked for, a code or refresh
    /// token it replayed), so that what one client can add to the log is bounded. `None` for
    /// an operator's revocations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

#[derive(Default)]
struct State {
    /// (kind, subject) -> (revoked_at, expires_at)
    entries: HashMap<(RevokedKind, String), (i64, i64)>,
    seen: HashMap<String, i64>,
}

/// The revocation state of this replica.
pub struct Denylist {
    state: RwLock<State>,
    events: broadcast::Sender<RevocationEvent>,
}

impl Default for Denylist {
    fn default() -> Self {
        Self {
            state: RwLock::default(),
            events: broadcast::channel(1024).0,
        }
    }
}

impl std::fmt::Debug for Denylist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Denylist").finish_non_exhaustive()
    }
}

impl Denylist {
    /// Applies an event; returns whether it was new. New events are re-broadcast to local
    /// watchers (`WatchRevocations`).
    pub fn apply(&self, ev: &RevocationEvent) -> bool {
        {
            let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
            if st.seen.contains_key(&ev.id) {
                return false;
            }
            st.seen.insert(ev.id.clone(), ev.expires_at);
            let slot = st
                .entries
                .entry((ev.kind, ev.subject.clone()))
                .or_insert((ev.revoked_at, ev.expires_at));
            slot.0 = slot.0.max(ev.revoked_at);
            slot.1 = slot.1.max(ev.expires_at);
        }
        let _ = self.events.send(ev.clone());
        true
    }

    /// Whether any event revokes the token with these claims.
    pub fn is_revoked(&self, c: &AccessTokenClaims) -> bool {
        let st = self.state.read().unwrap_or_else(|p| p.into_inner());
        if st.entries.is_empty() {
            return false;
        }
        let hit = |kind: RevokedKind, subject: &str, by_time: bool| {
            st.entries
                .get(&(kind, subject.to_owned()))
                .is_some_and(|(at, _)| !by_time || c.iat <= *at)
        };
        hit(RevokedKind::Token, &c.jti, false)
            || c.sid
                .as_deref()
                .is_some_and(|sid| hit(RevokedKind::Grant, sid, false))
            || hit(RevokedKind::User, &c.sub, true)
            || hit(RevokedKind::Client, &c.client_id, true)
    }

    /// Whether an event for this (kind, subject) is in force here.
    pub fn covers(&self, kind: RevokedKind, subject: &str) -> bool {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .contains_key(&(kind, subject.to_owned()))
    }

    /// Forgets events that can no longer affect a valid token.
    pub fn purge(&self, now: i64) {
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        st.entries.retain(|_, (_, exp)| *exp > now);
        st.seen.retain(|_, exp| *exp > now);
    }

    /// Live events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RevocationEvent> {
        self.events.subscribe()
    }

    /// The events currently in force, for a new watcher.
    pub fn snapshot(&self) -> Vec<RevocationEvent> {
        let st = self.state.read().unwrap_or_else(|p| p.into_inner());
        st.entries
            .iter()
            .map(|((kind, subject), (at, exp))| RevocationEvent {
                id: format!("{}:{subject}:{at}", kind.as_str()),
                kind: *kind,
                subject: subject.clone(),
                revoked_at: *at,
                expires_at: *exp,
                client_id: None,
            })
            .collect()
    }
}

/// Carries revocations to the other replicas.
#[async_trait]
pub trait RevocationBus: Send + Sync {
    async fn publish(&self, ev: &RevocationEvent) -> Result<(), String>;
}

/// One process: the local denylist already has every event it publishes.
#[derive(Debug, Default)]
pub struct LocalBus;

#[async_trait]
impl RevocationBus for LocalBus {
    async fn publish(&self, _: &RevocationEvent) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: i64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "i".into(),
            sub: "u1".into(),
            aud: "a".into(),
            client_id: "c1".into(),
            scope: String::new(),
            iat,
            exp: iat + 3600,
            jti: "j1".into(),
            sid: Some("g1".into()),
            nbf: None,
        }
    }

    fn ev(kind: RevokedKind, subject: &str, at: i64) -> RevocationEvent {
        RevocationEvent {
            id: format!("{kind:?}{subject}{at}"),
            kind,
            subject: subject.into(),
            revoked_at: at,
            expires_at: at + 3600,
            client_id: None,
        }
    }

    #[test]
    fn each_kind_revokes_what_it_names() {
        for (kind, subject) in [
            (RevokedKind::Token, "j1"),
            (RevokedKind::Grant, "g1"),
            (RevokedKind::User, "u1"),
            (RevokedKind::Client, "c1"),
        ] {
            let d = Denylist::default();
            assert!(!d.is_revoked(&claims(100)));
            assert!(d.apply(&ev(kind, subject, 100)));
            assert!(d.is_revoked(&claims(100)), "{kind:?}");
            assert!(
                !d.apply(&ev(kind, subject, 100)),
                "duplicate event is not new"
            );
        }
    }

    #[test]
    fn user_and_client_events_spare_tokens_issued_later() {
        let d = Denylist::default();
        d.apply(&ev(RevokedKind::User, "u1", 100));
        assert!(d.is_revoked(&claims(99)));
        assert!(!d.is_revoked(&claims(101)));
    }

    #[test]
    fn purge_forgets_expired_events() {
        let d = Denylist::default();
        d.apply(&ev(RevokedKind::Token, "j1", 100));
        d.purge(100 + 3601);
        assert!(!d.is_revoked(&claims(100)));
        assert!(d.snapshot().is_empty());
    }
}
