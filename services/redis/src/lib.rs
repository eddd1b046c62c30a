//! latchkey-redis: state shared between replicas through Redis.
//!
//! Revocations are published on one pub/sub channel; every replica subscribes and applies
//! them to its in-memory denylist. Redis only makes propagation fast: each event is also in
//! the database, which every replica polls, so a lost message or a Redis outage delays a
//! revocation by at most the poll interval and never loses it.

use async_trait::async_trait;
use deadpool_redis::redis;
use futures::StreamExt;
use latchkey_core::denylist::{Denylist, RevocationBus, RevocationEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The pub/sub channel revocation events travel on.
pub const REVOCATION_CHANNEL: &str = "latchkey:revocations";

/// A pooled Redis connection set.
#[derive(Clone)]
pub struct Redis {
    pool: deadpool_redis::Pool,
    url: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").finish_non_exhaustive()
    }
}

impl Redis {
    pub fn connect(url: &str) -> Result<Self, String> {
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(|e| format!("redis pool: {e}"))?;
        Ok(Self {
            pool,
            url: url.to_owned(),
        })
    }

    /// Whether Redis answers PING.
    pub async fn ping(&self) -> bool {
        match self.pool.get().await {
            Ok(mut c) => redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Applies every revocation published by any replica to `denylist` until `stop` turns
    /// true, reconnecting (with a bounded backoff) whenever the subscription drops.
    pub async fn subscribe_revocations(
        &self,
        denylist: Arc<Denylist>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_millis(200);
        while !*stop.borrow() {
            match self.listen(&denylist, &mut stop).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "revocation subscription lost; the database poll covers the gap");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn listen(
        &self,
        denylist: &Denylist,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let client = redis::Client::open(self.url.as_str()).map_err(|e| e.to_string())?;
        let mut pubsub = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
        pubsub
            .subscribe(REVOCATION_CHANNEL)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!("subscribed to revocations on Redis");
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else { return Err("subscription closed".into()) };
                    let payload: Vec<u8> = msg.get_payload_bytes().to_vec();
                    match serde_json::from_slice::<RevocationEvent>(&payload) {
                        Ok(ev) => { denylist.apply(&ev); }
                        Err(e) => tracing::warn!(error = %e, "ignoring a malformed revocation message"),
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }
}

#[async_trait]
impl RevocationBus for Redis {
    async fn publish(&self, ev: &RevocationEvent) -> Result<(), String> {
        let payload = serde_json::to_string(ev).map_err(|e| e.to_string())?;
        let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
        redis::cmd("PUBLISH")
            .arg(REVOCATION_CHANNEL)
            .arg(payload)
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
