//! Who may call which service, decided once per service by a tower layer in front of it,
//! before any RPC of that service runs. An RPC added to a service is guarded by construction;
//! there is no per-handler check to forget.
//!
//! - AuthService: the gateway's bearer secret.
//! - VerificationService: a resource server's Basic credentials (a confidential client that
//!   owns protected resources), or the gateway's bearer secret (ForwardAuth). The caller is
//!   left in the request's extensions as a core [`Caller`].
//! - AdminService: the operator's bearer secret.
//!
//! A credential of one service never opens another. Secrets are compared as SHA-256 digests
//! in constant time. An empty bearer never passes, and a configured secret shorter than
//! [`secret::MIN_SHARED_SECRET_BYTES`] is treated as unset: configuration refuses both
//! before a port opens, and the guard holds the line again should one reach it anyway.

use crate::status::to_status;
use futures_util::future::BoxFuture;
use latchkey_core::introspection::Caller;
use latchkey_core::{AuthCore, AuthError, secret};
use latchkey_proto::credentials::decode_basic;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::server::NamedService;
use tower::{Layer, Service};

/// The rule a service's layer enforces.
pub enum Guard {
    /// Only the holder of this secret (SHA-256 digest; `None` refuses everyone).
    Bearer(Option<String>),
    /// A resource server, or the gateway.
    Verification {
        core: Arc<AuthCore>,
        gateway_secret_hash: Option<String>,
    },
}

/// The digest a guard keeps of a configured shared secret, or `None` (nobody passes) when
/// there is none or it is too short to be one.
fn digest_of(configured: Option<&str>) -> Option<String> {
    match configured {
        Some(s) if s.len() >= secret::MIN_SHARED_SECRET_BYTES => Some(secret::hash(s)),
        Some(_) => {
            tracing::error!(
                "a shared gRPC credential is shorter than {} bytes: its service refuses every caller",
                secret::MIN_SHARED_SECRET_BYTES
            );
            None
        }
        None => None,
    }
}

impl Guard {
    /// Only the holder of `secret`; with none configured (or one too short), nobody.
    pub fn bearer(secret: Option<&str>) -> Self {
        Self::Bearer(digest_of(secret))
    }

    pub fn verification(core: Arc<AuthCore>, gateway_secret: Option<&str>) -> Self {
        Self::Verification {
            core,
            gateway_secret_hash: digest_of(gateway_secret),
        }
    }

    /// Who is calling, or why not. `Ok(None)`: allowed, and nothing to remember.
    async fn admit(&self, authorization: Option<&str>) -> Result<Option<Caller>, AuthError> {
        let bearer_matches = |hash: &Option<String>| {
            matches!(
                (authorization.and_then(|v| v.strip_prefix("Bearer ")), hash),
                (Some(presented), Some(hash))
                    if !presented.is_empty() && secret::verify(presented, hash)
            )
        };
        match self {
            Self::Bearer(hash) if bearer_matches(hash) => Ok(None),
            Self::Bearer(_) => Err(AuthError::Unauthenticated),
            Self::Verification {
                gateway_secret_hash,
                ..
            } if bearer_matches(gateway_secret_hash) => Ok(Some(Caller::Gateway)),
            Self::Verification { core, .. } => {
                let (id, secret) = authorization
                    .and_then(|v| decode_basic(v).ok())
                    .ok_or(AuthError::Unauthenticated)?;
                let client = core.authenticate_resource_server(&id, &secret).await?;
                Ok(Some(Caller::ResourceServer(client)))
            }
        }
    }
}

/// Puts a [`Guard`] in front of a service.
#[derive(Clone)]
pub struct GuardLayer(Arc<Guard>);

impl GuardLayer {
    pub fn new(guard: Guard) -> Self {
        Self(Arc::new(guard))
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded {
            inner,
            guard: self.0.clone(),
        }
    }
}

/// What a [`Guarded`] service returns.
pub type GuardedFuture<E> = BoxFuture<'static, Result<http::Response<tonic::body::Body>, E>>;

/// A service behind its [`Guard`].
#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    guard: Arc<Guard>,
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Guarded<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = GuardedFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The clone is ready-checked; keep the one that was polled (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        Box::pin(async move {
            // A header value shares the request's buffer: cloning it copies no bytes.
            let authorization = req.headers().get(http::header::AUTHORIZATION).cloned();
            let authorization = authorization.as_ref().and_then(|v| v.to_str().ok());
            match guard.admit(authorization).await {
                Ok(caller) => {
                    if let Some(caller) = caller {
                        req.extensions_mut().insert(caller);
                    }
                    inner.call(req).await
                }
                Err(e) => Ok(to_status(e).into_http()),
            }
        })
    }
}

/// The caller the VerificationService's guard admitted, taken out of the request.
pub fn take_caller(extensions: &mut tonic::Extensions) -> Result<Caller, tonic::Status> {
    extensions.remove::<Caller>().ok_or_else(|| {
        tracing::error!("a verification RPC ran without its guard");
        tonic::Status::internal("the caller was not authenticated")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::testing::TestCore;

    /// Every way a guard could be handed an empty or short credential, against every way a
    /// caller could present an empty one.
    #[tokio::test]
    async fn an_empty_bearer_never_passes_either_guard() {
        let core = TestCore::builder().build().await.expect("core").core;
        let long = "a-gateway-secret-of-forty-bytes-0123456789";
        let configured: [(&str, Option<&str>); 4] = [
            ("an empty secret", Some("")),
            ("a short secret", Some("short")),
            ("no secret", None),
            ("a good secret", Some(long)),
        ];
        let presented: [Option<&str>; 4] = [Some("Bearer "), Some("Bearer"), Some(""), None];
        for (what, secret) in configured {
            let guards = [
                ("bearer", Guard::bearer(secret)),
                ("verification", Guard::verification(core.clone(), secret)),
            ];
            for (kind, guard) in &guards {
                for authorization in presented {
                    let admitted = guard.admit(authorization).await;
                    assert!(
                        matches!(admitted, Err(AuthError::Unauthenticated)),
                        "{kind} guard with {what} admitted {authorization:?}: {admitted:?}"
                    );
                }
            }
        }
        // A short configured secret is refused even when presented exactly.
        for short in ["", "short"] {
            let presented = format!("Bearer {short}");
            assert!(
                Guard::bearer(Some(short))
                    .admit(Some(&presented))
                    .await
                    .is_err(),
                "{short:?}"
            );
        }
        // The good secret still passes: the refusals above are not a guard that refuses all.
        let presented = format!("Bearer {long}");
        assert!(matches!(
            Guard::bearer(Some(long)).admit(Some(&presented)).await,
            Ok(None)
        ));
        assert!(matches!(
            Guard::verification(core, Some(long))
                .admit(Some(&presented))
                .await,
            Ok(Some(Caller::Gateway))
        ));
    }
}
