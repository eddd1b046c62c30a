//! The tonic `AuthService`: decodes proto into core types, calls the core, encodes the
//! result. It holds no SQL and no OAuth rule; its one decision is who may call what.

use crate::status::{oauth_code, to_status};
use latchkey_core::authorize::{AuthorizationRequest, Prompt, StartOutcome};
use latchkey_core::client_auth::PresentedCredentials;
use latchkey_core::denylist::RevocationEvent;
use latchkey_core::grant::TokenRequest;
use latchkey_core::introspection::Verifier;
use latchkey_core::resource::Resource;
use latchkey_core::{AuthCore, AuthError, secret};
use latchkey_proto::credentials::decode_basic;
use latchkey_proto::v1 as pb;
use latchkey_proto::v1::auth_service_server::AuthService;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The metadata key that carries the gateway's credential, as `Bearer <secret>`.
pub const GATEWAY_AUTH_HEADER: &str = "authorization";

pub struct AuthGrpc {
    core: Arc<AuthCore>,
    readiness: Arc<dyn crate::readiness::Readiness>,
    /// SHA-256 of the gateway secret; `None` refuses every gateway-only call.
    gateway_secret_hash: Option<String>,
}

impl AuthGrpc {
    pub fn new(
        core: Arc<AuthCore>,
        readiness: Arc<dyn crate::readiness::Readiness>,
        gateway_secret: Option<&str>,
    ) -> Self {
        Self {
            core,
            readiness,
            gateway_secret_hash: gateway_secret.map(secret::hash),
        }
    }

    fn authorization<T>(req: &Request<T>) -> Option<&str> {
        req.metadata()
            .get(GATEWAY_AUTH_HEADER)
            .and_then(|v| v.to_str().ok())
    }

    fn is_gateway<T>(&self, req: &Request<T>) -> bool {
        let presented = Self::authorization(req).and_then(|v| v.strip_prefix("Bearer "));
        matches!((presented, &self.gateway_secret_hash), (Some(p), Some(hash)) if secret::verify(p, hash))
    }

    /// Refuses anyone but the gateway with `UNAUTHENTICATED`.
    fn require_gateway<T>(&self, req: &Request<T>) -> Result<(), Status> {
        if self.is_gateway(req) {
            Ok(())
        } else {
            Err(to_status(AuthError::Unauthenticated))
        }
    }

    /// The `Basic` client credentials in the metadata, if any, decoded as the gateway
    /// decodes them (RFC 6749 §2.3.1).
    fn basic_credentials<T>(req: &Request<T>) -> Option<(String, String)> {
        decode_basic(Self::authorization(req)?).ok()
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

    /// The gateway, or an authenticated resource server; anyone else is `UNAUTHENTICATED`.
    async fn verifier<T>(&self, req: &Request<T>) -> Result<Verifier, Status> {
        if self.is_gateway(req) {
            return Ok(Verifier::Gateway);
        }
        let (id, secret) =
            Self::basic_credentials(req).ok_or_else(|| to_status(AuthError::Unauthenticated))?;
        let client = self
            .core
            .authenticate_resource_server(&id, &secret)
            .await
            .map_err(to_status)?;
        Ok(Verifier::ResourceServer(client))
    }
}

fn credentials(c: Option<pb::ClientAuthentication>) -> PresentedCredentials {
    let c = c.unwrap_or_default();
    PresentedCredentials {
        basic: c.basic.map(|b| (b.client_id, b.client_secret)),
        client_id: c.client_id,
        client_secret: c.client_secret,
    }
}

fn prompt(p: Prompt) -> pb::AuthorizationPrompt {
    pb::AuthorizationPrompt {
        session_id: p.session_id,
        csrf_token: p.csrf_token,
        client_name: p.client_name,
        redirect_host: p.redirect_host,
        scopes: p.scopes,
        resource: p.resource,
        authenticated: p.authenticated,
        user_email: p.user_email.unwrap_or_default(),
    }
}

fn user(u: latchkey_core::model::User) -> pb::User {
    pb::User {
        id: u.id.to_string(),
        email: u.email,
        disabled: u.disabled,
        created_at: u.created_at.timestamp(),
    }
}

fn update(ev: RevocationEvent) -> pb::RevocationUpdate {
    pb::RevocationUpdate {
        update: Some(pb::revocation_update::Update::Event(event(ev))),
    }
}

fn snapshot_complete() -> pb::RevocationUpdate {
    pb::RevocationUpdate {
        update: Some(pb::revocation_update::Update::SnapshotComplete(
            pb::SnapshotComplete {},
        )),
    }
}

fn event(ev: RevocationEvent) -> pb::RevocationEvent {
    pb::RevocationEvent {
        id: ev.id,
        kind: ev.kind.as_str().to_owned(),
        subject: ev.subject,
        revoked_at: ev.revoked_at,
        expires_at: ev.expires_at,
    }
}

fn json(v: &serde_json::Value) -> pb::JsonDocument {
    pb::JsonDocument {
        json: v.to_string(),
    }
}

type Rpc<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl AuthService for AuthGrpc {
    async fn get_server_metadata(
        &self,
        _: Request<pb::GetServerMetadataRequest>,
    ) -> Rpc<pb::JsonDocument> {
        Ok(Response::new(json(&self.core.metadata())))
    }

    async fn get_resource_metadata(
        &self,
        req: Request<pb::GetResourceMetadataRequest>,
    ) -> Rpc<pb::JsonDocument> {
        let doc = self
            .core
            .protected_resource_metadata(&req.into_inner().resource)
            .await
            .map_err(to_status)?;
        Ok(Response::new(json(&doc)))
    }

    async fn get_jwks(&self, _: Request<pb::GetJwksRequest>) -> Rpc<pb::JsonDocument> {
        Ok(Response::new(json(&self.core.jwks())))
    }

    async fn check_readiness(&self, _: Request<pb::CheckReadinessRequest>) -> Rpc<pb::Readiness> {
        Ok(Response::new(self.readiness.check().await))
    }

    async fn register_client(
        &self,
        req: Request<pb::RegisterClientRequest>,
    ) -> Rpc<pb::JsonDocument> {
        self.require_gateway(&req)?;
        let r = req.into_inner();
        let reg = self
            .core
            .register_client(&r.metadata_json, r.initial_access_token.as_deref())
            .await
            .map_err(to_status)?;
        Ok(Response::new(json(&reg.to_json())))
    }

    async fn start_authorization(
        &self,
        req: Request<pb::StartAuthorizationRequest>,
    ) -> Rpc<pb::StartAuthorizationResponse> {
        self.require_gateway(&req)?;
        let r = req.into_inner();
        let outcome = self
            .core
            .start_authorization(AuthorizationRequest {
                response_type: r.response_type,
                client_id: r.client_id,
                redirect_uri: r.redirect_uri,
                scope: r.scope,
                state: r.state,
                code_challenge: r.code_challenge,
                code_challenge_method: r.code_challenge_method,
                response_mode: r.response_mode,
                resource: r.resource,
                repeated: r.repeated_parameters,
            })
            .await
            .map_err(to_status)?;
        let outcome = match outcome {
            StartOutcome::Prompt(p) => pb::start_authorization_response::Outcome::Prompt(prompt(p)),
            StartOutcome::ErrorRedirect(uri) => {
                pb::start_authorization_response::Outcome::ErrorRedirect(uri)
            }
            StartOutcome::ErrorNotice(n) => {
                pb::start_authorization_response::Outcome::ErrorNotice(pb::ErrorNotice {
                    redirect: n.redirect,
                    client_name: n.client_name,
                    redirect_host: n.redirect_host,
                    error: n.error.to_owned(),
                    error_description: n.error_description,
                })
            }
        };
        Ok(Response::new(pb::StartAuthorizationResponse {
            outcome: Some(outcome),
        }))
    }

    async fn submit_login(
        &self,
        req: Request<pb::SubmitLoginRequest>,
    ) -> Rpc<pb::SubmitLoginResponse> {
        self.require_gateway(&req)?;
        let r = req.into_inner();
        let out = self
            .core
            .submit_login(&r.session_id, &r.csrf_token, &r.email, &r.password)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::SubmitLoginResponse {
            prompt: Some(prompt(out.prompt)),
            error_message: out.error.unwrap_or_default().to_owned(),
        }))
    }

    async fn submit_consent(
        &self,
        req: Request<pb::SubmitConsentRequest>,
    ) -> Rpc<pb::SubmitConsentResponse> {
        self.require_gateway(&req)?;
        let r = req.into_inner();
        let redirect_uri = self
            .core
            .submit_consent(&r.session_id, &r.csrf_token, r.approve)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::SubmitConsentResponse { redirect_uri }))
    }

    async fn exchange_token(
        &self,
        req: Request<pb::ExchangeTokenRequest>,
    ) -> Rpc<pb::TokenResponse> {
        self.require_gateway(&req)?;
        let r = req.into_inner();
        let grant_type = match r.grant_type.as_str() {
            g @ ("authorization_code" | "refresh_token" | "client_credentials") => g.to_owned(),
            _ => "other".to_owned(),
        };
        let out = self
            .core
            .exchange_token(TokenRequest {
                grant_type: r.grant_type,
                code: r.code,
                redirect_uri: r.redirect_uri,
                code_verifier: r.code_verifier,
                refresh_token: r.refresh_token,
                scope: r.scope,
                resource: r.resource,
                client: credentials(r.client),
                repeated: r.repeated_parameters,
            })
            .await
            .map_err(to_status)?;
        metrics::counter!(
            "latchkey_tokens_issued_total",
            "grant_type" => grant_type,
            "client_tier" => out.client_tier.as_str(),
        )
        .increment(1);
        Ok(Response::new(pb::TokenResponse {
            access_token: out.access_token,
            token_type: "Bearer".into(),
            expires_in: out.expires_in,
            refresh_token: out.refresh_token,
            scope: out.scope,
        }))
    }

    async fn revoke_token(
        &self,
        req: Request<pb::RevokeTokenRequest>,
    ) -> Rpc<pb::RevokeTokenResponse> {
        let r = req.into_inner();
        self.core
            .revoke(
                &r.token,
                r.token_type_hint.as_deref(),
                &credentials(r.client),
                &r.repeated_parameters,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RevokeTokenResponse {}))
    }

    async fn introspect(&self, req: Request<pb::IntrospectRequest>) -> Rpc<pb::IntrospectResponse> {
        // A resource server may authenticate in the metadata instead of the message.
        let from_metadata = Self::basic_credentials(&req);
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
        Ok(Response::new(pb::IntrospectResponse {
            active: i.active,
            scope: i.scope,
            client_id: i.client_id,
            sub: i.sub,
            aud: i.aud,
            iss: i.iss,
            exp: i.exp,
            iat: i.iat,
            jti: i.jti,
            token_type: i.token_type,
        }))
    }

    async fn verify_token(
        &self,
        req: Request<pb::VerifyTokenRequest>,
    ) -> Rpc<pb::VerifyTokenResponse> {
        let verifier = self.verifier(&req).await?;
        let r = req.into_inner();
        let answer = match self
            .core
            .verify_token(&verifier, &r.token, &r.audience, &r.required_scopes)
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
        req: Request<pb::WatchRevocationsRequest>,
    ) -> Rpc<Self::WatchRevocationsStream> {
        self.verifier(&req).await?;
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
        req: Request<pb::WatchRevocationsRequest>,
    ) -> Rpc<Self::WatchRevocationUpdatesStream> {
        self.verifier(&req).await?;
        let updates = self.revocation_updates();
        Ok(Response::new(Box::pin(async_stream::stream! {
            for await update in updates {
                yield Ok(update);
            }
        })))
    }

    type WatchKeysStream = Pin<Box<dyn Stream<Item = Result<pb::JsonDocument, Status>> + Send>>;

    async fn watch_keys(&self, req: Request<pb::WatchKeysRequest>) -> Rpc<Self::WatchKeysStream> {
        self.verifier(&req).await?;
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

    async fn create_user(&self, req: Request<pb::CreateUserRequest>) -> Rpc<pb::User> {
        self.require_gateway(&req)?;
        let r = req.into_inner();
        let u = self
            .core
            .create_user(&r.email, &r.password)
            .await
            .map_err(to_status)?;
        Ok(Response::new(user(u)))
    }

    async fn list_users(&self, req: Request<pb::ListUsersRequest>) -> Rpc<pb::ListUsersResponse> {
        self.require_gateway(&req)?;
        let users = self.core.list_users().await.map_err(to_status)?;
        Ok(Response::new(pb::ListUsersResponse {
            users: users.into_iter().map(user).collect(),
        }))
    }

    async fn disable_user(&self, req: Request<pb::DisableUserRequest>) -> Rpc<pb::User> {
        self.require_gateway(&req)?;
        let u = self
            .core
            .disable_user(&req.into_inner().email)
            .await
            .map_err(to_status)?;
        Ok(Response::new(user(u)))
    }
}
