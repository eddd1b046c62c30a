//! Client ID Metadata Documents fetched with the SSRF-safe outbound client: the core's
//! [`ClientDocuments`] over `latchkey-outbound`. The core judges what comes back; this file
//! only fetches under the strict policy for URLs that clients supply and translates the
//! outcome.

use async_trait::async_trait;
use latchkey_core::clock::Clock;
use latchkey_core::metadata_document::{
    ClientDocuments, DocumentFreshness, FetchFailure, FetchedDocument,
};
use latchkey_outbound::{FetchError, FetchPolicy, Fetcher, Freshness};
use std::sync::Arc;
use std::time::SystemTime;

/// Documents fetched with `fetcher` under `policy` ([`FetchPolicy::document`] in production),
/// key sets under `key_set_policy` ([`FetchPolicy::key_set`]).
pub struct OutboundDocuments {
    fetcher: Fetcher,
    policy: FetchPolicy,
    key_set_policy: FetchPolicy,
    /// The core's clock, for reading an `Expires` header that comes without a `Date`.
    clock: Arc<dyn Clock>,
}

impl OutboundDocuments {
    pub fn new(
        fetcher: Fetcher,
        policy: FetchPolicy,
        key_set_policy: FetchPolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            fetcher,
            policy,
            key_set_policy,
            clock,
        }
    }

    async fn fetch_with(
        &self,
        url: &url::Url,
        policy: &FetchPolicy,
        what: &'static str,
    ) -> Result<FetchedDocument, FetchFailure> {
        match self.fetcher.fetch(url, policy).await {
            Ok(fetched) => {
                let now = SystemTime::from(self.clock.now());
                let freshness = match fetched.freshness(now) {
                    Freshness::NoStore => DocumentFreshness::NoStore,
                    Freshness::Fresh(d) => DocumentFreshness::Fresh(d),
                    Freshness::Unspecified => DocumentFreshness::Unspecified,
                };
                Ok(FetchedDocument {
                    body: fetched.body.to_vec(),
                    freshness,
                })
            }
            Err(e) => {
                // The one place a fetch failure is logged with its cause; the client is told
                // the typed failure only.
                let cause = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                tracing::info!(%url, what, error = %e, %cause, "fetch of a client's published document failed");
                Err(failure(&e))
            }
        }
    }
}

#[async_trait]
impl ClientDocuments for OutboundDocuments {
    async fn fetch(&self, url: &url::Url) -> Result<FetchedDocument, FetchFailure> {
        self.fetch_with(url, &self.policy, "client metadata document")
            .await
    }

    async fn fetch_key_set(&self, url: &url::Url) -> Result<FetchedDocument, FetchFailure> {
        self.fetch_with(url, &self.key_set_policy, "client key set")
            .await
    }
}

fn failure(e: &FetchError) -> FetchFailure {
    match e {
        FetchError::Policy(_)
        | FetchError::InvalidUrl(_)
        | FetchError::NotHttps
        | FetchError::UnsupportedScheme => FetchFailure::InvalidUrl,
        FetchError::RefusedAddress { .. } => FetchFailure::RefusedAddress,
        FetchError::Timeout(_) => FetchFailure::Timeout,
        FetchError::Status(s) => FetchFailure::Status(*s),
        FetchError::ContentType { .. } | FetchError::ContentEncoding => FetchFailure::ContentType,
        FetchError::TooLarge { .. } => FetchFailure::TooLarge,
        FetchError::Redirect(_) => FetchFailure::Redirected,
        FetchError::TooManyRequests(_) => FetchFailure::RateLimited,
        _ => FetchFailure::Unreachable,
    }
}
