//! sea-orm entities, one per table. These `Model`s never leave this crate: `convert.rs` turns
//! them into core records.

macro_rules! entity {
    ($modname:ident, $table:literal, { $( $(#[$attr:meta])* $field:ident : $ty:ty ),* $(,)? }) => {
        pub mod $modname {
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                $( $(#[$attr])* pub $field: $ty, )*
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

entity!(users, "users", {
    #[sea_orm(primary_key, auto_increment = false)] id: String,
    email: String,
    password_hash: String,
    disabled: bool,
    created_at: i64,
});

entity!(clients, "clients", {
    #[sea_orm(primary_key, auto_increment = false)] id: String,
    secret_hash: Option<String>,
    name: Option<String>,
    redirect_uris: String,
    grant_types: String,
    auth_method: String,
    scope: Option<String>,
    metadata: String,
    created_at: i64,
    tier: String,
    audiences: String,
    trusted_redirects: bool,
    updated_at: i64,
    secret_expires_at: Option<i64>,
    registration_token_hash: Option<String>,
    jwks: Option<String>,
    jwks_uri: Option<String>,
});

entity!(initial_access_tokens, "initial_access_tokens", {
    #[sea_orm(primary_key, auto_increment = false)] token_hash: String,
    audiences: String,
    scope: Option<String>,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    used_by: Option<String>,
});

entity!(client_usage, "client_usage", {
    #[sea_orm(primary_key, auto_increment = false)] client_id: String,
    tokens_issued: i64,
    last_used_at: i64,
});

entity!(grants, "grants", {
    #[sea_orm(primary_key, auto_increment = false)] id: String,
    client_id: String,
    user_id: String,
    scope: String,
    resource: String,
    created_at: i64,
    revoked_at: Option<i64>,
    install: Option<String>,
});

entity!(authorization_codes, "authorization_codes", {
    #[sea_orm(primary_key, auto_increment = false)] code_hash: String,
    grant_id: String,
    client_id: String,
    redirect_uri: Option<String>,
    code_challenge: String,
    expires_at: i64,
    consumed_at: Option<i64>,
});

entity!(refresh_tokens, "refresh_tokens", {
    #[sea_orm(primary_key, auto_increment = false)] token_hash: String,
    grant_id: String,
    expires_at: i64,
    consumed_at: Option<i64>,
});

entity!(consents, "consents", {
    #[sea_orm(primary_key, auto_increment = false)] id: String,
    user_id: String,
    client_id: String,
    scope: String,
    resource: String,
    granted_at: i64,
    install: Option<String>,
});

entity!(revocation_events, "revocation_events", {
    #[sea_orm(primary_key, auto_increment = false)] id: String,
    kind: String,
    subject: String,
    revoked_at: i64,
    expires_at: i64,
    client_id: Option<String>,
});

entity!(client_resources, "client_resources", {
    #[sea_orm(primary_key, auto_increment = false)] client_id: String,
    #[sea_orm(primary_key, auto_increment = false)] resource: String,
});

entity!(signing_keys, "signing_keys", {
    #[sea_orm(primary_key, auto_increment = false)] kid: String,
    private_key: String,
    public_key: String,
    created_at: i64,
    activates_at: i64,
});

entity!(protected_resources, "protected_resources", {
    #[sea_orm(primary_key, auto_increment = false)] url: String,
    scopes: Option<String>,
    is_default: bool,
    created_at: i64,
    /// JSON: each scope and the scopes it implies directly (migration 10).
    scope_implications: Option<String>,
});

entity!(used_client_assertions, "used_client_assertions", {
    #[sea_orm(primary_key, auto_increment = false)] client_id: String,
    #[sea_orm(primary_key, auto_increment = false)] jti: String,
    expires_at: i64,
});

entity!(client_documents, "client_documents", {
    #[sea_orm(primary_key, auto_increment = false)] client_id: String,
    body: String,
    fetched_at: i64,
    expires_at: i64,
});
