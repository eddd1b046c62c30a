//! Server-rendered HTML: login, consent and error pages. Askama escapes every value; the
//! headers forbid framing, sniffing, caching and referrers.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub client_name: &'a str,
    pub redirect_host: &'a str,
    pub csrf_token: &'a str,
    pub error: &'a str,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub client_name: &'a str,
    pub redirect_host: &'a str,
    pub resource: &'a str,
    pub scopes: &'a [String],
    pub user_email: &'a str,
    pub csrf_token: &'a str,
    /// For a client known by its metadata document: its host, verified or not.
    pub document: Option<&'a latchkey_proto::v1::ClientDocument>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub code: &'a str,
    pub description: &'a str,
}

/// `/authorize` with a `client_id` this server does not know.
#[derive(Template)]
#[template(path = "unknown_client.html")]
pub struct UnknownClientPage<'a> {
    pub code: &'a str,
    pub description: &'a str,
}

/// An error in an authorization request from a client that is not trusted: the user sees it
/// and chooses whether to go back to the client (RFC 9700 §4.11.2).
#[derive(Template)]
#[template(path = "error_notice.html")]
pub struct ErrorNoticePage<'a> {
    pub error: &'a str,
    pub description: &'a str,
    pub client_name: &'a str,
    pub redirect_host: &'a str,
    pub redirect: &'a str,
}

/// Renders a page with the security headers every page gets.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    let mut res = match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    };
    let h = res.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        // img-src: the logo of a client whose document's host the operator trusts.
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src https:; frame-ancestors 'none'; base-uri 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

pub fn error_page(err: &crate::error::OAuthError) -> Response {
    let status = match err.http_status() {
        s if s.is_server_error() => s,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut res = render(
        status,
        &ErrorPage {
            code: err.error(),
            description: &err.description,
        },
    );
    if let Some(retry) = err.retry_after_header() {
        res.headers_mut().insert(header::RETRY_AFTER, retry);
    }
    res
}

/// The page for an unknown `client_id` at `/authorize`: the application must register again.
pub fn unknown_client_page(err: &crate::error::OAuthError) -> Response {
    render(
        StatusCode::BAD_REQUEST,
        &UnknownClientPage {
            code: err.error(),
            description: &err.description,
        },
    )
}
