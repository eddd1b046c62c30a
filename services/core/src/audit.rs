//! Audit events: one structured record per security-relevant action, on the tracing target
//! `latchkey::audit`, with a stable schema:
//!
//! | field | meaning |
//! | --- | --- |
//! | `audit_event` | `login`, `consent`, `client_registered`, `client_updated`, `client_deleted`, `token_issued`, `code_replayed`, `refresh_reused`, `revocation`, `key_generated`, `key_published` |
//! | `outcome` | `success`, `failure`, `denied`, `locked` |
//! | `client_id`, `user_id`, `grant_id`, `kid` | identifiers, absent when not applicable |
//! | `client_tier` | `operator`, `dynamic`, `metadata_document`; absent when no client is known |
//! | `detail` | a fixed word: the grant type, the revocation kind, why a client was refused or deleted, the limit that refused a sign-in (`network`, `account`, `capacity`) |
//!
//! Never a token, code, secret, password, or email.

/// One audit record.
#[derive(Debug, Default, Clone, Copy)]
pub struct Audit<'a> {
    pub event: &'static str,
    pub outcome: &'static str,
    pub client_id: &'a str,
    pub client_tier: &'static str,
    pub user_id: &'a str,
    pub grant_id: &'a str,
    pub kid: &'a str,
    pub detail: &'a str,
}

/// A field that is left out of the record when it does not apply.
fn present(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

impl Audit<'_> {
    pub fn emit(self) {
        // Fields that do not apply are absent, not empty: a `token_issued` record is written
        // for every token, and formatting fields that say nothing costs the token endpoint.
        tracing::info!(
            target: "latchkey::audit",
            audit_event = self.event,
            outcome = self.outcome,
            client_id = present(self.client_id),
            client_tier = present(self.client_tier),
            user_id = present(self.user_id),
            grant_id = present(self.grant_id),
            kid = present(self.kid),
            detail = present(self.detail),
            "audit"
        );
    }
}
