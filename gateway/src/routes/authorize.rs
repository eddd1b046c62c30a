//! The authorization endpoint and its two forms. The pending authorization's handle lives in
//! an `HttpOnly`, `SameSite=Lax` cookie; each form carries the anti-CSRF token. With an https
//! issuer the cookie is `Secure` and named with the `__Host-` prefix (RFC 6265bis §4.1.3.2):
//! browsers then refuse it unless it came over https from this very host, with `Path=/` and
//! no `Domain`, so a sibling subdomain cannot plant or overwrite it. A plain-http development
//! server keeps the plain name, which browsers accept over http.

use crate::AppState;
use crate::error::OAuthError;
use crate::form::{Params, form_body};
use crate::pages::{self, ConsentPage, LoginPage};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use latchkey_proto::v1 as pb;
use latchkey_proto::v1::OauthErrorCode;
use latchkey_proto::v1::start_authorization_response::Outcome;
use std::net::IpAddr;

/// The session cookie's name and path, with and without https.
fn cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-latchkey_authz"
    } else {
        "latchkey_authz"
    }
}

fn cookie_path(https: bool) -> &'static str {
    // `__Host-` requires `Path=/`; over http the cookie stays with the authorization pages.
    if https { "/" } else { "/authorize" }
}

fn session_cookie(value: String, https: bool) -> Cookie<'static> {
    Cookie::build((cookie_name(https), value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(https)
        .path(cookie_path(https))
        .build()
}

/// 303 See Other: after a form POST the browser must follow with GET (RFC 9700 §4.11).
fn see_other(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(location) {
        Ok(v) => {
            res.headers_mut().insert(header::LOCATION, v);
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(_) => pages::error_page(&OAuthError::new(
            OauthErrorCode::ServerError,
            "invalid redirect",
        )),
    }
}

/// Shows the page for where the authorization stands: login, or consent once logged in.
fn prompt_page(jar: CookieJar, https: bool, p: pb::AuthorizationPrompt, error: &str) -> Response {
    let jar = jar.add(session_cookie(p.session_id.clone(), https));
    let page = if p.authenticated {
        pages::render(
            StatusCode::OK,
            &ConsentPage {
                client_name: &p.client_name,
                redirect_host: &p.redirect_host,
                resource: &p.resource,
                scopes: &p.scopes,
                user_email: &p.user_email,
                csrf_token: &p.csrf_token,
                document: p.client_document.as_ref(),
            },
        )
    } else {
        let status = if error.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        pages::render(
            status,
            &LoginPage {
                client_name: &p.client_name,
                redirect_host: &p.redirect_host,
                csrf_token: &p.csrf_token,
                error,
            },
        )
    };
    (jar, page).into_response()
}

pub(crate) async fn start(State(s): State<AppState>, request: Request) -> Response {
    let jar = CookieJar::from_headers(request.headers());
    // The same address the rate limits count, so that the core's bound on authorizations in
    // progress per network sees through trusted proxies alike.
    let peer = crate::forwarded::peer(request.extensions());
    let client_address = crate::ratelimit::client_ip(request.headers(), peer, &s.config.proxies)
        .map(|ip| ip.to_string());
    let q = Params::parse(request.uri().query().unwrap_or_default().as_bytes());
    let req = pb::StartAuthorizationRequest {
        response_type: q.get("response_type"),
        client_id: q.get("client_id"),
        redirect_uri: q.get("redirect_uri"),
        scope: q.get("scope"),
        state: q.get("state"),
        code_challenge: q.get("code_challenge"),
        code_challenge_method: q.get("code_challenge_method"),
        resource: q.all("resource"),
        repeated_parameters: q.repeated(),
        response_mode: q.get("response_mode"),
        client_address,
    };
    match s
        .client
        .auth
        .start_authorization(tonic::Request::new(req))
        .await
    {
        Ok(r) => match r.into_inner().outcome {
            Some(Outcome::Prompt(p)) => prompt_page(jar, s.config.https_issuer, p, ""),
            Some(Outcome::ErrorRedirect(uri)) => see_other(&uri),
            Some(Outcome::ErrorNotice(n)) => pages::render(
                StatusCode::BAD_REQUEST,
                &pages::ErrorNoticePage {
                    error: &n.error,
                    description: &n.error_description,
                    client_name: &n.client_name,
                    redirect_host: &n.redirect_host,
                    redirect: &n.redirect,
                },
            ),
            None => pages::error_page(&OAuthError::new(
                OauthErrorCode::ServerError,
                "empty answer",
            )),
        },
        Err(status) => match OAuthError::from(status) {
            // At the authorization endpoint the only `invalid_client` is a client_id this
            // server does not know: often one deleted for disuse that the application keeps
            // sending. Say plainly what would help.
            e if e.code == OauthErrorCode::InvalidClient => pages::unknown_client_page(&e),
            e => pages::error_page(&e),
        },
    }
}

fn session_id(jar: &CookieJar, https: bool) -> Result<String, OAuthError> {
    jar.get(cookie_name(https))
        .map(|c| c.value().to_owned())
        .ok_or_else(|| {
            OAuthError::invalid_request(
                "no authorization in progress: start again from the application",
            )
        })
}

/// The user agent's address, as the rate limits count it (trusted proxies and all): the
/// AuthService's sign-in lockout counts failures per network of this address.
pub(crate) struct ClientAddress(Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let peer = crate::forwarded::peer(&parts.extensions);
        Ok(Self(crate::ratelimit::client_ip(
            &parts.headers,
            peer,
            &s.config.proxies,
        )))
    }
}

pub(crate) async fn login(
    State(s): State<AppState>,
    jar: CookieJar,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let form = form_body(&headers, body)?;
        let req = pb::SubmitLoginRequest {
            session_id: session_id(&jar, s.config.https_issuer)?,
            csrf_token: form.get("csrf_token").unwrap_or_default(),
            email: form.get("email").unwrap_or_default(),
            password: form.get("password").unwrap_or_default(),
            client_address: client.map(|ip| ip.to_string()),
        };
        Ok::<_, OAuthError>(
            s.client
                .auth
                .submit_login(tonic::Request::new(req))
                .await?
                .into_inner(),
        )
    }
    .await;
    match result {
        Ok(r) => match r.prompt {
            Some(p) => prompt_page(jar, s.config.https_issuer, p, &r.error_message),
            None => pages::error_page(&OAuthError::new(
                OauthErrorCode::ServerError,
                "empty answer",
            )),
        },
        Err(e) => pages::error_page(&e),
    }
}

pub(crate) async fn consent(
    State(s): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let form = form_body(&headers, body)?;
        let req = pb::SubmitConsentRequest {
            session_id: session_id(&jar, s.config.https_issuer)?,
            csrf_token: form.get("csrf_token").unwrap_or_default(),
            approve: form.get("decision").as_deref() == Some("allow"),
        };
        Ok::<_, OAuthError>(
            s.client
                .auth
                .submit_consent(tonic::Request::new(req))
                .await?
                .into_inner(),
        )
    }
    .await;
    match result {
        Ok(r) => {
            let https = s.config.https_issuer;
            // A browser takes the removal of a `__Host-` cookie only with the prefix's rules.
            let jar = jar.remove(
                Cookie::build(cookie_name(https))
                    .path(cookie_path(https))
                    .secure(https),
            );
            (jar, see_other(&r.redirect_uri)).into_response()
        }
        // The client was deleted while the user decided.
        Err(e) if e.code == OauthErrorCode::InvalidClient => pages::unknown_client_page(&e),
        Err(e) => pages::error_page(&e),
    }
}
