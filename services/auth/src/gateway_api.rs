//! The gateway's service (`AuthService`): what the public HTTP endpoints need. Only the
//! gateway reaches it (`guard.rs`).

use crate::service::{Rpc, credentials, introspection, json, prompt};
use crate::status::to_status;
use latchkey_core::authorize::{AuthorizationRequest, StartOutcome};
use latchkey_core::grant::TokenRequest;
use latchkey_core::{AuthCore, AuthError, Reason};
use latchkey_proto::v1 as pb;
use latchkey_proto::v1::auth_service_server::AuthService;
use std::sync::Arc;
use tonic::{Request, Response};

pub struct GatewayApi {
    core: Arc<AuthCore>,
    readiness: Arc<dyn crate::readiness::Readiness>,
}

impl GatewayApi {
    pub fn new(core: Arc<AuthCore>, readiness: Arc<dyn crate::readiness::Readiness>) -> Self {
        Self { core, readiness }
    }
}

#[tonic::async_trait]
impl AuthService for GatewayApi {
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
        let r = req.into_inner();
        let reg = match self
            .core
            .register_client(&r.metadata_json, r.initial_access_token.as_deref())
            .await
        {
            Ok(reg) => reg,
            Err(e) => {
                if matches!(
                    e,
                    AuthError::TemporarilyUnavailable(Reason::DynamicClientLimit)
                ) {
                    // For the operator's alerts: registrations turned away at the bound.
                    metrics::counter!(
                        "latchkey_registrations_refused_total",
                        "reason" => "client_limit",
                    )
                    .increment(1);
                }
                return Err(to_status(e));
            }
        };
        Ok(Response::new(json(&reg.to_json())))
    }

    async fn get_client_registration(
        &self,
        req: Request<pb::GetClientRegistrationRequest>,
    ) -> Rpc<pb::JsonDocument> {
        let r = req.into_inner();
        let reg = self
            .core
            .read_registration(&r.client_id, &r.registration_access_token)
            .await
            .map_err(to_status)?;
        Ok(Response::new(json(&reg.to_json())))
    }

    async fn replace_client_registration(
        &self,
        req: Request<pb::ReplaceClientRegistrationRequest>,
    ) -> Rpc<pb::JsonDocument> {
        let r = req.into_inner();
        let reg = self
            .core
            .replace_registration(&r.client_id, &r.registration_access_token, &r.metadata_json)
            .await
            .map_err(to_status)?;
        Ok(Response::new(json(&reg.to_json())))
    }

    async fn delete_client_registration(
        &self,
        req: Request<pb::DeleteClientRegistrationRequest>,
    ) -> Rpc<pb::DeleteClientRegistrationResponse> {
        let r = req.into_inner();
        self.core
            .delete_registration(&r.client_id, &r.registration_access_token)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DeleteClientRegistrationResponse {}))
    }

    async fn start_authorization(
        &self,
        req: Request<pb::StartAuthorizationRequest>,
    ) -> Rpc<pb::StartAuthorizationResponse> {
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
                client_address: r.client_address,
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
        let r = req.into_inner();
        let out = self
            .core
            .submit_login(
                &r.session_id,
                &r.csrf_token,
                &r.email,
                &r.password,
                r.client_address.as_deref(),
            )
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
        let r = req.into_inner();
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
            "grant_type" => out.grant_type.as_str(),
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
        let r = req.into_inner();
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
}
