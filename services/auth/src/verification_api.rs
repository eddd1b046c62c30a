//! The resource servers' service (`VerificationService`): token checks, introspection, and
//! the streams that keep a local verifier current. Its guard admits a resource server (which
//! may ask only about tokens for resources it owns) or the gateway (ForwardAuth).

use crate::service::{Rpc, credentials, introspection, json, snapshot_complete, update};
use crate::status::{oauth_code, to_status};
use latchkey_core::resource::Resource;
use latchkey_core::{AuthCore, AuthError};
use latchkey_proto::credentials::decode_basic;
use latchkey_proto::v1 as pb;
use latchkey_proto::v1::verification_service_server::VerificationService;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub struct VerificationApi {
    core: Arc<AuthCore>,
}

impl VerificationApi {
    pub fn new(core: Arc<AuthCore>) -> Self {
        Self { core }
    }

    /// Every revocation in force, the end-of-snapshot mark, then each new revocation; after
    /// falling behind, everything in force again and the mark again.
    fn revocation_updates(&self) -> impl Stream<Item = pb::RevocationUpdate> + Send + 'static {
        let denylist = self.core.denylist().clone();
        // Subscribe before the snapshot, so nothing falls between them.
        let mut live = denylist.subscribe();
        let snapshot = denylist.snapshot();
        async_stream::stream! {
            for ev in snapshot {
                yield update(ev);
            }
            yield snapshot_complete();
            loop {
                match live.recv().await {
                    Ok(ev) => yield update(ev),
                    // Fell behind: send everything in force again; duplicates are harmless.
                    Err(RecvError::Lagged(_)) => {
                        for ev in denylist.snapshot() {
                            yield update(ev);
                        }
                        yield snapshot_complete();
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        }
    }
}

#[tonic::async_trait]
impl VerificationService for VerificationApi {
    async fn get_jwks(&self, _: Request<pb::GetJwksRequest>) -> Rpc<pb::JsonDocument> {
        Ok(Response::new(json(&self.core.jwks())))
    }

    async fn introspect(&self, req: Request<pb::IntrospectRequest>) -> Rpc<pb::IntrospectResponse> {
        // A resource server authenticates in the metadata (its guard checked it); RFC 7662
        // judges what it may see with the same credentials.
        let from_metadata = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| decode_basic(v).ok());
        let mut r = req.into_inner();
        if r.client.is_none()
            && let Some((client_id, client_secret)) = from_metadata
        {
            r.client = Some(pb::ClientAuthentication {
                basic: Some(pb::BasicCredentials {
                    client_id,
                    client_secret,
                }),
                ..Default::default()
            });
        }
        let i = self
            .core
            .introspect(
                &r.token,
                r.token_type_hint.as_deref(),
                &credentials(r.client),
                &r.repeated_parameters,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(introspection(i)))
    }

    async fn verify_token(
        &self,
        req: Request<pb::VerifyTokenRequest>,
    ) -> Rpc<pb::VerifyTokenResponse> {
        let (_, mut extensions, r) = req.into_parts();
        let caller = crate::guard::take_caller(&mut extensions)?;
        let answer = match self
            .core
            .verify_token(&caller, &r.token, &r.audience, &r.required_scopes)
            .await
        {
            Ok(c) => pb::VerifyTokenResponse {
                valid: true,
                claims: Some(pb::AccessTokenClaims {
                    scopes: c
                        .scope
                        .split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    iss: c.iss.clone(),
                    sub: c.sub.clone(),
                    aud: c.aud.clone(),
                    client_id: c.client_id.clone(),
                    iat: c.iat,
                    exp: c.exp,
                    jti: c.jti.clone(),
                    subject: if c.has_user() {
                        pb::TokenSubject::User
                    } else {
                        pb::TokenSubject::Client
                    } as i32,
                }),
                ..Default::default()
            },
            // RFC 6750 §3.1 outcomes are answers, not failures of the call.
            Err(e @ (AuthError::InvalidToken(_) | AuthError::InsufficientScope(_))) => {
                pb::VerifyTokenResponse {
                    valid: false,
                    claims: None,
                    error: e.code().to_owned(),
                    error_code: oauth_code(&e) as i32,
                    error_description: e.description(),
                    resource_metadata: Resource::parse(&r.audience)
                        .map(|a| a.metadata_location().1)
                        .unwrap_or_default(),
                }
            }
            Err(e) => return Err(to_status(e)),
        };
        Ok(Response::new(answer))
    }

    type WatchRevocationsStream =
        Pin<Box<dyn Stream<Item = Result<pb::RevocationEvent, Status>> + Send>>;

    async fn watch_revocations(
        &self,
        _: Request<pb::WatchRevocationsRequest>,
    ) -> Rpc<Self::WatchRevocationsStream> {
        let updates = self.revocation_updates();
        // The events alone, as before WatchRevocationUpdates existed.
        let stream = async_stream::stream! {
            for await update in updates {
                if let Some(pb::revocation_update::Update::Event(ev)) = update.update {
                    yield Ok(ev);
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    type WatchRevocationUpdatesStream =
        Pin<Box<dyn Stream<Item = Result<pb::RevocationUpdate, Status>> + Send>>;

    async fn watch_revocation_updates(
        &self,
        _: Request<pb::WatchRevocationsRequest>,
    ) -> Rpc<Self::WatchRevocationUpdatesStream> {
        let updates = self.revocation_updates();
        Ok(Response::new(Box::pin(async_stream::stream! {
            for await update in updates {
                yield Ok(update);
            }
        })))
    }

    type WatchKeysStream = Pin<Box<dyn Stream<Item = Result<pb::JsonDocument, Status>> + Send>>;

    async fn watch_keys(&self, _: Request<pb::WatchKeysRequest>) -> Rpc<Self::WatchKeysStream> {
        let mut keys = self.core.watch_keys();
        let stream = async_stream::stream! {
            loop {
                let doc = json(keys.borrow_and_update().jwks());
                yield Ok(doc);
                if keys.changed().await.is_err() {
                    break;
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }
}
