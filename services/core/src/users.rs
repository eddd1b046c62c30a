//! User administration: the rules shared by the CLI and the admin RPCs.

use crate::AuthCore;
use crate::denylist::RevokedKind;
use crate::error::{AuthError, AuthResult, Reason};
use crate::model::User;
use crate::password;
use crate::store::StoreError;
use uuid::Uuid;

/// Normalizes and checks an email address: trimmed, lower-cased, one `@` with text on both
/// sides and a dot in the domain, no spaces or control characters.
pub fn normalize_email(email: &str) -> AuthResult<String> {
    let e = email.trim().to_lowercase();
    let bad = || AuthError::InvalidRequest(Reason::MalformedEmail);
    let (local, domain) = e.split_once('@').ok_or_else(bad)?;
    let ok = !local.is_empty()
        && e.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ','));
    if ok { Ok(e) } else { Err(bad()) }
}

impl AuthCore {
    pub async fn create_user(&self, email: &str, password_in: &str) -> AuthResult<User> {
        let email = normalize_email(email)?;
        let user = User {
            id: Uuid::new_v4(),
            email,
            password_hash: {
                let candidate = password_in.to_owned();
                password::bounded(move || password::hash(&candidate)).await??
            },
            disabled: false,
            created_at: self.clock.now(),
        };
        match self.stores.users.insert_user(&user).await {
            Ok(()) => Ok(user),
            Err(StoreError::Duplicate(_)) => Err(AuthError::Conflict(Reason::EmailTaken)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_users(&self) -> AuthResult<Vec<User>> {
        Ok(self.stores.users.list_users().await?)
    }

    /// Disables a user. Their grants stop working at once, and their access tokens on every
    /// replica within the revocation fan-out.
    pub async fn disable_user(&self, email: &str) -> AuthResult<User> {
        let email = normalize_email(email)?;
        let user = self
            .stores
            .users
            .set_user_disabled(&email, true)
            .await?
            .ok_or(AuthError::NotFound(Reason::NoSuchUser))?;
        self.publish_revocation(
            RevokedKind::User,
            user.id.to_string(),
            self.access_token_horizon(),
            None,
        )
        .await?;
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            normalize_email("  Alice@Example.COM ").expect("valid"),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "a b@example.com",
            "a@b@example.com",
            "alice@.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }
}
