//! Proto to core and back, for the three services: the helpers they share. Each service is
//! in a file of its own; who may call it is decided before it runs (`guard.rs`).

use latchkey_core::authorize::Prompt;
use latchkey_core::client_auth::PresentedCredentials;
use latchkey_core::denylist::RevocationEvent;
use latchkey_proto::v1 as pb;
use tonic::{Response, Status};

pub(crate) type Rpc<T> = Result<Response<T>, Status>;

pub(crate) fn credentials(c: Option<pb::ClientAuthentication>) -> PresentedCredentials {
    let c = c.unwrap_or_default();
    PresentedCredentials {
        basic: c.basic.map(|b| (b.client_id, b.client_secret)),
        client_id: c.client_id,
        client_secret: c.client_secret,
        // Both or neither: a type without an assertion (or the reverse) is refused as an
        // assertion of no supported type.
        assertion: match (c.client_assertion_type, c.client_assertion) {
            (None, None) => None,
            (t, a) => Some(latchkey_core::client_assertion::ClientAssertion {
                assertion_type: t.unwrap_or_default(),
                assertion: a.unwrap_or_default(),
            }),
        },
    }
}

pub(crate) fn prompt(p: Prompt) -> pb::AuthorizationPrompt {
    pb::AuthorizationPrompt {
        session_id: p.session_id,
        csrf_token: p.csrf_token,
        client_name: p.client_name,
        redirect_host: p.redirect_host,
        scopes: p.scopes,
        resource: p.resource,
        authenticated: p.authenticated,
        user_email: p.user_email.unwrap_or_default(),
        client_document: p.document.map(|d| pb::ClientDocument {
            host: d.host,
            verified: d.verified,
            localhost_only: d.localhost_only,
            logo_uri: d.logo_uri.unwrap_or_default(),
        }),
    }
}

pub(crate) fn user(u: latchkey_core::model::User) -> pb::User {
    pb::User {
        id: u.id.to_string(),
        email: u.email,
        disabled: u.disabled,
        created_at: u.created_at.timestamp(),
    }
}

pub(crate) fn update(ev: RevocationEvent) -> pb::RevocationUpdate {
    pb::RevocationUpdate {
        update: Some(pb::revocation_update::Update::Event(event(ev))),
    }
}

pub(crate) fn snapshot_complete() -> pb::RevocationUpdate {
    pb::RevocationUpdate {
        update: Some(pb::revocation_update::Update::SnapshotComplete(
            pb::SnapshotComplete {},
        )),
    }
}

pub(crate) fn event(ev: RevocationEvent) -> pb::RevocationEvent {
    pb::RevocationEvent {
        id: ev.id,
        kind: ev.kind.as_str().to_owned(),
        subject: ev.subject,
        revoked_at: ev.revoked_at,
        expires_at: ev.expires_at,
    }
}

pub(crate) fn json(v: &serde_json::Value) -> pb::JsonDocument {
    pb::JsonDocument {
        json: v.to_string(),
    }
}

/// RFC 7662 §2.2, for both services that introspect.
pub(crate) fn introspection(
    i: latchkey_core::introspection::Introspection,
) -> pb::IntrospectResponse {
    pb::IntrospectResponse {
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
    }
}
