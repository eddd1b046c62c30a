//! Audit events: one structured record per security-relevant action, on the tracing target
//! `latchkey::audit`, with a stable schema:
//!
//! | field | meaning |
//! | --- | --- |
//! | `audit_event` | `login`, `consent`, `client_registered`, `token_issued`, `code_replayed`, `refresh_reused`, `revocation`, `key_generated`, `key_published` |
//! | `outcome` | `success`, `failure`, `denied`, `locked` |
//! | `client_id`, `user_id`, `grant_id`, `kid` | identifiers, empty when not applicable |
//! | `client_tier` | `operator`, `dynamic`, `metadata_document`; empty when no client is known |
//! | `detail` | a fixed word: the grant type, the revocation kind |
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

impl Audit<'_> {
    pub fn emit(self) {
        tracing::info!(
            target: "latchkey::audit",
            audit_event = self.event,
            outcome = self.outcome,
            client_id = self.client_id,
            client_tier = self.client_tier,
            user_id = self.user_id,
            grant_id = self.grant_id,
            kid = self.kid,
            detail = self.detail,
            "audit"
        );
    }
}
