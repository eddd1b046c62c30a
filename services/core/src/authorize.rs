//! The authorization endpoint (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1), split in three steps
//! around the user: start (validate the request), login, and consent.
//!
//! Until the client and redirect URI are validated, errors are shown to the user and never
//! redirected (RFC 6749 §4.1.2.1). After that, they go back to the redirect URI with `error`,
//! `state` and `iss` (RFC 9207): at once for a client whose redirect URIs the operator set,
//! and for any other only when the user chooses to continue. RFC 9700 §4.11.2: the server must authenticate the user
//! before redirecting, and should redirect automatically only to URIs it trusts; anyone can
//! register a redirect URI, so without this a broken link to `/authorize` is an open
//! redirect.

use crate::AuthCore;
use crate::client_network::ClientNetwork;
use crate::error::{AuthError, AuthResult, Reason};
use crate::lockout::Verdict;
use crate::model::{AuthorizationCode, ClientTier, Grant, GrantType};
use crate::password;
use crate::pkce::CodeChallenge;
use crate::redirect_uri;
use crate::resource;
use crate::scope::ScopeSet;
use crate::secret;
use crate::session::{Admission, AuthorizationSession};
use std::sync::atomic::Ordering;
use uuid::Uuid;

/// The authorization request's parameters, as sent.
#[derive(Debug, Default, Clone)]
pub struct AuthorizationRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub response_mode: Option<String>,
    pub resource: Vec<String>,
    /// Names of parameters that appeared more than once.
    pub repeated: Vec<String>,
    /// The user agent's address, as the gateway determined it (its trusted proxies taken into
    /// account): the authorization counts against its network's bound on sessions in
    /// progress. `None` from a caller that does not know it.
    pub client_address: Option<String>,
}

/// What the user sees next.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub session_id: String,
    pub csrf_token: String,
    pub client_name: String,
    pub redirect_host: String,
    pub scopes: Vec<String>,
    pub resource: String,
    pub authenticated: bool,
    pub user_email: Option<String>,
    /// Set for a client whose `client_id` is a metadata document URL: its host, whether the
    /// operator trusts it, and whether it only redirects to this machine.
    pub document: Option<crate::metadata_document::DocumentView>,
}

#[derive(Debug)]
pub enum StartOutcome {
    Prompt(Prompt),
    /// The request is bad but the redirect URI is good, and the operator set the client's
    /// redirect URIs: send the browser here.
    ErrorRedirect(String),
    /// The request is bad, the redirect URI is good, and the client is not trusted: show
    /// the error, and send the browser on only if the user chooses to continue.
    ErrorNotice(ErrorNotice),
}

/// An error to show before the browser goes back to a client that is not trusted.
#[derive(Debug, Clone)]
pub struct ErrorNotice {
    /// The redirect URI with `error`, `error_description`, `state` and `iss`.
    pub redirect: String,
    pub client_name: String,
    /// The host the user would be sent to, shown so the user can judge it.
    pub redirect_host: String,
    pub error: &'static str,
    pub error_description: String,
}

#[derive(Debug)]
pub struct LoginOutcome {
    pub prompt: Prompt,
    /// Set when the login failed. Deliberately the same for an unknown account, a disabled
    /// one and a wrong password.
    pub error: Option<&'static str>,
}

const LOGIN_FAILED: &str = "Invalid email or password.";
const LOCKED_OUT: &str = "Too many failed sign-in attempts. Try again later.";
/// Sign-in attempts one authorization session allows; the session is dropped when the last
/// of them fails.
const MAX_LOGIN_ATTEMPTS: u32 = 5;

/// The network of the address the gateway passed, if any; an address that is no IP address
/// is refused (the gateway only ever sends one).
fn client_network(address: Option<&str>) -> AuthResult<Option<ClientNetwork>> {
    address
        .map(|a| {
            ClientNetwork::parse(a).ok_or(AuthError::InvalidRequest(Reason::Malformed(
                "client_address",
            )))
        })
        .transpose()
}

/// Appends parameters to a validated redirect URI.
fn redirect_with(uri: &str, params: &[(&str, &str)]) -> AuthResult<String> {
    let mut url = url::Url::parse(uri).map_err(AuthError::internal)?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    Ok(url.into())
}

impl AuthCore {
    fn error_redirect(
        &self,
        uri: &str,
        err: &AuthError,
        state: Option<&str>,
    ) -> AuthResult<String> {
        let desc = err.description();
        let mut params = vec![("error", err.code()), ("error_description", desc.as_str())];
        if let Some(s) = state {
            params.push(("state", s));
        }
        params.push(("iss", &self.settings.issuer));
        redirect_with(uri, &params)
    }

    /// Validates an authorization request and opens a session for the user's decision.
    pub async fn start_authorization(&self, req: AuthorizationRequest) -> AuthResult<StartOutcome> {
        // Step 0: bounds on what the request may make us store or echo. Shown, never
        // redirected (see `limits`).
        crate::limits::check_authorization_request(&req)?;
        let network = client_network(req.client_address.as_deref())?;
        // Step 1: client and redirect URI. Errors here are shown, never redirected.
        for p in ["client_id", "redirect_uri"] {
            if req.repeated.iter().any(|r| r == p) {
                return Err(AuthError::InvalidRequest(Reason::Repeated(p.into())));
            }
        }
        let client_id = req
            .client_id
            .as_deref()
            .ok_or(AuthError::InvalidRequest(Reason::Missing("client_id")))?;
        let mut client = self
            .client(client_id)
            .await?
            .ok_or(AuthError::InvalidClient(Reason::UnknownClient))?;
        // A cached metadata document may predate a redirect URI its client now uses: it is
        // fetched again, once, before the request is refused.
        if let Some(requested) = req.redirect_uri.as_deref()
            && client.tier == ClientTier::MetadataDocument
            && redirect_uri::find_match(&client.redirect_uris, requested).is_none()
        {
            client = self.document_client(client_id, true).await?;
        }
        let redirect_uri = match req.redirect_uri.as_deref() {
            Some(requested) => {
                redirect_uri::find_match(&client.redirect_uris, requested)
                    .ok_or(AuthError::InvalidRequest(Reason::RedirectUriMismatch))?;
                requested.to_owned()
            }
            // OAuth 2.1 §4.1.1: optional only when exactly one URI is registered.
            None => match client.redirect_uris.as_slice() {
                [only] => only.clone(),
                _ => return Err(AuthError::InvalidRequest(Reason::Missing("redirect_uri"))),
            },
        };

        // Step 2: everything else. Errors go back to the client.
        let state = (!req.repeated.iter().any(|r| r == "state"))
            .then_some(req.state.as_deref())
            .flatten();
        match self.validate_rest(&req, &client).await {
            Ok((challenge, scope, resource)) => {
                let session_id = secret::generate();
                let csrf_token = secret::generate();
                let session = AuthorizationSession {
                    client_id: client.id.clone(),
                    client_name: client.name.clone().unwrap_or_else(|| client.id.clone()),
                    redirect_uri_given: req.redirect_uri.is_some(),
                    redirect_uri,
                    state: state.map(str::to_owned),
                    code_challenge: challenge.as_str().to_owned(),
                    scope: scope.to_string(),
                    resource: resource.as_str().to_owned(),
                    csrf_hash: secret::hash(&csrf_token),
                    user_id: None,
                    user_email: None,
                    expires_at: self.clock.now() + self.settings.session_ttl,
                    network: network.as_ref().map(|n| n.as_str().to_owned()),
                    document: self.settings.client_documents.view(&client),
                };
                // A self-registered client that starts an authorization is in use: written at
                // once the first time, so that it never gives way while its user signs in.
                self.mark_first_use(&client).await;
                let admission = self
                    .sessions
                    .open(
                        &secret::hash(&session_id),
                        &session,
                        self.clock.now(),
                        self.settings.max_sessions_per_network,
                    )
                    .await?;
                if admission == Admission::NetworkFull {
                    // One network cannot fill the session store. An office behind one address
                    // needs the bound raised (LATCHKEY_MAX_SESSIONS_PER_ADDRESS).
                    tracing::warn!(
                        network = %network.as_ref().map(ClientNetwork::as_str).unwrap_or("-"),
                        limit = self.settings.max_sessions_per_network,
                        "authorization refused: too many in progress from one network"
                    );
                    return Err(AuthError::TemporarilyUnavailable(
                        Reason::TooManyPendingAuthorizations,
                    ));
                }
                Ok(StartOutcome::Prompt(
                    self.prompt(session_id, csrf_token, &session),
                ))
            }
            Err(AuthError::Internal(e)) => Err(AuthError::Internal(e)),
            Err(err) => {
                let redirect = self.error_redirect(&redirect_uri, &err, state)?;
                if client.trusted_redirects {
                    return Ok(StartOutcome::ErrorRedirect(redirect));
                }
                Ok(StartOutcome::ErrorNotice(ErrorNotice {
                    redirect,
                    client_name: client.name.clone().unwrap_or_else(|| client.id.clone()),
                    redirect_host: redirect_uri::display_host(&redirect_uri),
                    error: err.code(),
                    error_description: err.description(),
                }))
            }
        }
    }

    async fn validate_rest(
        &self,
        req: &AuthorizationRequest,
        client: &crate::model::Client,
    ) -> AuthResult<(CodeChallenge, ScopeSet, resource::Resource)> {
        // RFC 6749 §3.1: parameters MUST NOT be included more than once (resource may repeat,
        // RFC 8707 §2, and is judged below).
        if let Some(p) = req.repeated.iter().find(|p| p.as_str() != "resource") {
            return Err(AuthError::InvalidRequest(Reason::Repeated(p.clone())));
        }
        match req.response_type.as_deref() {
            None => return Err(AuthError::InvalidRequest(Reason::Missing("response_type"))),
            Some("code") => {}
            Some(other) => {
                return Err(AuthError::UnsupportedResponseType(Reason::Unsupported(
                    "response_type",
                    other.into(),
                )));
            }
        }
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(AuthError::UnauthorizedClient(Reason::GrantNotAllowed(
                "authorization_code",
            )));
        }
        if let Some(mode) = req.response_mode.as_deref().filter(|m| *m != "query") {
            return Err(AuthError::InvalidRequest(Reason::Unsupported(
                "response_mode",
                mode.into(),
            )));
        }
        let challenge = CodeChallenge::parse(
            req.code_challenge.as_deref(),
            req.code_challenge_method.as_deref(),
        )?;
        let (resource, scope) = self.audience_and_scope(
            client,
            crate::audience::Behalf::User,
            &req.resource,
            req.scope.as_deref(),
        )?;
        Ok((challenge, scope, resource))
    }

    async fn session(
        &self,
        session_id: &str,
        csrf_token: &str,
    ) -> AuthResult<(String, AuthorizationSession)> {
        let key = secret::hash(session_id);
        let session = self
            .sessions
            .get(&key, self.clock.now())
            .await?
            .ok_or(AuthError::InvalidRequest(Reason::SessionExpired))?;
        if !secret::verify(csrf_token, &session.csrf_hash) {
            return Err(AuthError::InvalidRequest(Reason::CsrfMismatch));
        }
        Ok((key, session))
    }

    /// Checks the user's email and password for a pending authorization. `client_address` is
    /// the address the sign-in came from, as the gateway determined it (the one its rate
    /// limits count); the lockout counts failures per account and per network of that
    /// address ([`ClientNetwork`]), and all attempts without one as one network.
    ///
    /// Every attempt is counted before its password is checked, and the count and the
    /// judgement are one atomic step in the store: per authorization session, per account and
    /// network, and per account. So a burst of concurrent attempts gets at most as many
    /// password checks as the limits allow, and a right password that arrives once the
    /// account is locked is refused like a wrong one.
    pub async fn submit_login(
        &self,
        session_id: &str,
        csrf_token: &str,
        email: &str,
        password_in: &str,
        client_address: Option<&str>,
    ) -> AuthResult<LoginOutcome> {
        let network = client_network(client_address)?;
        let (key, mut session) = self.session(session_id, csrf_token).await?;
        let normalized = email.trim().to_lowercase();
        // The account is looked up before anything is counted, so that a database outage
        // (answered 503) never counts against the session, the account or the network. Every
        // attempt pays the same lookup, whatever the lockout then says. An address no account
        // can have is not looked up (PostgreSQL refuses NUL in text); it fails like any
        // unknown account.
        let user = match crate::users::normalize_email(&normalized) {
            Ok(email) => self.stores.users.find_user_by_email(&email).await?,
            Err(_) => None,
        };
        // RFC 6749 §10.10: bound password guessing per authorization. Attempts refused by
        // the lockout count too: the bound is on what this session may ask.
        let attempt = self
            .sessions
            .count_login_attempt(&key, self.clock.now())
            .await?
            .ok_or(AuthError::InvalidRequest(Reason::SessionExpired))?;
        if attempt > MAX_LOGIN_ATTEMPTS {
            self.sessions.take(&key, self.clock.now()).await?;
            return Err(AuthError::AccessDenied(Reason::TooManyFailedLogins));
        }
        // Keyed whether or not the account exists, so a lock reveals nothing.
        let account = secret::hash(&normalized);
        let now = self.clock.now().timestamp();
        let locks = match self
            .lockout
            .admit(&account, network.as_ref(), now, &self.settings.lockout)
            .await?
        {
            Verdict::Check { locks } => locks,
            Verdict::Refused { limit, .. } => {
                crate::audit::Audit {
                    event: "login",
                    outcome: "locked",
                    client_id: &session.client_id,
                    detail: limit.as_str(),
                    ..Default::default()
                }
                .emit();
                return Ok(LoginOutcome {
                    prompt: self.prompt(session_id.to_owned(), csrf_token.to_owned(), &session),
                    error: Some(LOCKED_OUT),
                });
            }
        };
        let password_ok = self
            .check_password(password_in, user.as_ref().map(|u| u.password_hash.clone()))
            .await?;
        let ok = password_ok && user.as_ref().is_some_and(|u| !u.disabled);
        if ok {
            // The attempt was counted as a failure before the check; it was not one.
            self.lockout.release(&account, network.as_ref()).await?;
        } else if locks {
            tracing::warn!(client_id = %session.client_id, "sign-ins to one account are locked or slowed after repeated failures");
        }
        match user.filter(|_| ok) {
            Some(user) => {
                // A new handle after login, so a handle seen before login is worthless.
                let new_id = secret::generate();
                let new_csrf = secret::generate();
                session.user_id = Some(user.id);
                session.user_email = Some(user.email.clone());
                session.csrf_hash = secret::hash(&new_csrf);
                // Of two concurrent logins on one session, only one may continue it.
                if self.sessions.take(&key, self.clock.now()).await?.is_none() {
                    return Err(AuthError::InvalidRequest(Reason::SessionExpired));
                }
                self.sessions
                    .put(&secret::hash(&new_id), &session, self.clock.now())
                    .await?;
                crate::audit::Audit {
                    event: "login",
                    outcome: "success",
                    client_id: &session.client_id,
                    user_id: &user.id.to_string(),
                    ..Default::default()
                }
                .emit();
                Ok(LoginOutcome {
                    prompt: self.prompt(new_id, new_csrf, &session),
                    error: None,
                })
            }
            None => {
                crate::audit::Audit {
                    event: "login",
                    outcome: "failure",
                    client_id: &session.client_id,
                    ..Default::default()
                }
                .emit();
                if attempt >= MAX_LOGIN_ATTEMPTS {
                    self.sessions.take(&key, self.clock.now()).await?;
                    return Err(AuthError::AccessDenied(Reason::TooManyFailedLogins));
                }
                Ok(LoginOutcome {
                    prompt: self.prompt(session_id.to_owned(), csrf_token.to_owned(), &session),
                    error: Some(LOGIN_FAILED),
                })
            }
        }
    }

    /// Verifies `candidate` against `stored` with argon2, or spends the time of one
    /// verification when there is no account, so that the answer takes as long either way.
    /// argon2 takes tens of milliseconds: it runs off the async workers.
    async fn check_password(&self, candidate: &str, stored: Option<String>) -> AuthResult<bool> {
        self.password_checks.fetch_add(1, Ordering::Relaxed);
        let candidate = candidate.to_owned();
        password::bounded(move || match stored {
            Some(hash) => password::verify(&candidate, &hash),
            None => {
                password::verify_dummy(&candidate);
                false
            }
        })
        .await
    }

    /// Records the user's decision and returns where to send the browser: the redirect URI
    /// with a code, or with `access_denied`.
    pub async fn submit_consent(
        &self,
        session_id: &str,
        csrf_token: &str,
        approve: bool,
    ) -> AuthResult<String> {
        self.session(session_id, csrf_token).await?;
        let now = self.clock.now();
        // Taking the session makes the decision single-use.
        let session = self
            .sessions
            .take(&secret::hash(session_id), now)
            .await?
            .ok_or(AuthError::InvalidRequest(Reason::SessionExpired))?;
        let user_id = session
            .user_id
            .ok_or(AuthError::InvalidRequest(Reason::NotLoggedIn))?;
        // The client may have been deleted while the user decided (by an operator, or for
        // long disuse): it must register again, and nothing is stored for it.
        let Some(client) = self.client(&session.client_id).await? else {
            return Err(AuthError::InvalidClient(Reason::UnknownClient));
        };
        if !approve {
            crate::audit::Audit {
                event: "consent",
                outcome: "denied",
                client_id: &session.client_id,
                user_id: &user_id.to_string(),
                ..Default::default()
            }
            .emit();
            return self.error_redirect(
                &session.redirect_uri,
                &AuthError::AccessDenied(Reason::UserDenied),
                session.state.as_deref(),
            );
        }
        let grant = Grant {
            id: Uuid::new_v4(),
            client_id: session.client_id.clone(),
            user_id,
            // The session holds the scope as text; it was resolved from a ScopeSet.
            scope: ScopeSet::parse(&session.scope)?,
            resource: session.resource.clone(),
            install: Some(redirect_uri::install_key(&session.redirect_uri)),
            created_at: now,
            revoked_at: None,
        };
        // Grants and consents refer to a client row; a document's client gets one now, when
        // a user has approved it, and not for every anonymous request that names a document.
        self.anchor_document_client(&client).await?;
        let code = secret::generate();
        let record = AuthorizationCode {
            code_hash: secret::hash(&code),
            grant_id: grant.id,
            client_id: session.client_id.clone(),
            redirect_uri: session
                .redirect_uri_given
                .then(|| session.redirect_uri.clone()),
            code_challenge: session.code_challenge.clone(),
            expires_at: now + self.settings.code_ttl,
            consumed_at: None,
        };
        self.stores
            .grants
            .insert_grant_with_code(&grant, &record)
            .await?;
        self.stores
            .grants
            .record_consent(
                user_id,
                &session.client_id,
                grant.install.as_deref().unwrap_or_default(),
                &session.scope,
                &session.resource,
                now,
            )
            .await?;
        crate::audit::Audit {
            event: "consent",
            outcome: "success",
            client_id: &session.client_id,
            user_id: &user_id.to_string(),
            grant_id: &grant.id.to_string(),
            ..Default::default()
        }
        .emit();
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = session.state.as_deref() {
            params.push(("state", s));
        }
        params.push(("iss", &self.settings.issuer));
        redirect_with(&session.redirect_uri, &params)
    }
}

impl AuthCore {
    /// What the user is asked to approve. Its scopes are those the token will carry: the
    /// session's, with what the resource's scope hierarchy implies, so that consenting to
    /// `admin` shows the `files:write` it grants as well.
    fn prompt(&self, session_id: String, csrf_token: String, s: &AuthorizationSession) -> Prompt {
        let scopes = match ScopeSet::parse(&s.scope) {
            Ok(set) => self
                .token_scope(&s.resource, &set)
                .iter()
                .map(str::to_owned)
                .collect(),
            // The session holds a scope it resolved from a ScopeSet; shown as it is otherwise.
            Err(_) => s
                .scope
                .split(' ')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        prompt(session_id, csrf_token, s, scopes)
    }
}

fn prompt(
    session_id: String,
    csrf_token: String,
    s: &AuthorizationSession,
    scopes: Vec<String>,
) -> Prompt {
    Prompt {
        session_id,
        csrf_token,
        client_name: s.client_name.clone(),
        redirect_host: redirect_uri::display_host(&s.redirect_uri),
        scopes,
        resource: s.resource.clone(),
        authenticated: s.user_id.is_some(),
        user_email: s.user_email.clone(),
        document: s.document.clone(),
    }
}
