//! The first schema: users, clients, grants with their codes and refresh tokens, consents,
//! revoked access tokens, signing keys and protected resources.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    Disabled,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
    SecretHash,
    Name,
    RedirectUris,
    GrantTypes,
    AuthMethod,
    Scope,
    Metadata,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Grants {
    Table,
    Id,
    ClientId,
    UserId,
    Scope,
    Resource,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum AuthorizationCodes {
    Table,
    CodeHash,
    GrantId,
    ClientId,
    RedirectUri,
    CodeChallenge,
    ExpiresAt,
    ConsumedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    TokenHash,
    GrantId,
    ExpiresAt,
    ConsumedAt,
}

#[derive(DeriveIden)]
enum Consents {
    Table,
    Id,
    UserId,
    ClientId,
    Scope,
    Resource,
    GrantedAt,
}

#[derive(DeriveIden)]
enum RevokedAccessTokens {
    Table,
    Jti,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    PrivateKey,
    PublicKey,
    CreatedAt,
    Active,
}

#[derive(DeriveIden)]
enum ProtectedResources {
    Table,
    Url,
    Scopes,
    IsDefault,
    CreatedAt,
}

fn cascade(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(text(Users::Id).primary_key())
                .col(text_uniq(Users::Email))
                .col(text(Users::PasswordHash))
                .col(boolean(Users::Disabled).default(false))
                .col(big_integer(Users::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Clients::Table)
                .col(text(Clients::Id).primary_key())
                .col(text_null(Clients::SecretHash))
                .col(text_null(Clients::Name))
                .col(text(Clients::RedirectUris))
                .col(text(Clients::GrantTypes))
                .col(text(Clients::AuthMethod))
                .col(text_null(Clients::Scope))
                .col(text(Clients::Metadata))
                .col(big_integer(Clients::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Grants::Table)
                .col(text(Grants::Id).primary_key())
                .col(text(Grants::ClientId))
                .col(text(Grants::UserId))
                .col(text(Grants::Scope))
                .col(text(Grants::Resource))
                .col(big_integer(Grants::CreatedAt))
                .col(big_integer_null(Grants::RevokedAt))
                .foreign_key(&mut cascade(
                    "fk_grants_client",
                    (Grants::Table, Grants::ClientId),
                    (Clients::Table, Clients::Id),
                ))
                .foreign_key(&mut cascade(
                    "fk_grants_user",
                    (Grants::Table, Grants::UserId),
                    (Users::Table, Users::Id),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_grants_client")
                .table(Grants::Table)
                .col(Grants::ClientId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_grants_user")
                .table(Grants::Table)
                .col(Grants::UserId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AuthorizationCodes::Table)
                .col(text(AuthorizationCodes::CodeHash).primary_key())
                .col(text(AuthorizationCodes::GrantId))
                .col(text(AuthorizationCodes::ClientId))
                .col(text_null(AuthorizationCodes::RedirectUri))
                .col(text(AuthorizationCodes::CodeChallenge))
                .col(big_integer(AuthorizationCodes::ExpiresAt))
                .col(big_integer_null(AuthorizationCodes::ConsumedAt))
                .foreign_key(&mut cascade(
                    "fk_codes_grant",
                    (AuthorizationCodes::Table, AuthorizationCodes::GrantId),
                    (Grants::Table, Grants::Id),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_codes_grant")
                .table(AuthorizationCodes::Table)
                .col(AuthorizationCodes::GrantId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RefreshTokens::Table)
                .col(text(RefreshTokens::TokenHash).primary_key())
                .col(text(RefreshTokens::GrantId))
                .col(big_integer(RefreshTokens::ExpiresAt))
                .col(big_integer_null(RefreshTokens::ConsumedAt))
                .foreign_key(&mut cascade(
                    "fk_refresh_grant",
                    (RefreshTokens::Table, RefreshTokens::GrantId),
                    (Grants::Table, Grants::Id),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_refresh_grant")
                .table(RefreshTokens::Table)
                .col(RefreshTokens::GrantId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Consents::Table)
                .col(text(Consents::Id).primary_key())
                .col(text(Consents::UserId))
                .col(text(Consents::ClientId))
                .col(text(Consents::Scope))
                .col(text(Consents::Resource))
                .col(big_integer(Consents::GrantedAt))
                .foreign_key(&mut cascade(
                    "fk_consents_client",
                    (Consents::Table, Consents::ClientId),
                    (Clients::Table, Clients::Id),
                ))
                .foreign_key(&mut cascade(
                    "fk_consents_user",
                    (Consents::Table, Consents::UserId),
                    (Users::Table, Users::Id),
                ))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RevokedAccessTokens::Table)
                .col(text(RevokedAccessTokens::Jti).primary_key())
                .col(big_integer(RevokedAccessTokens::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(SigningKeys::Table)
                .col(text(SigningKeys::Kid).primary_key())
                .col(text(SigningKeys::PrivateKey))
                .col(text(SigningKeys::PublicKey))
                .col(big_integer(SigningKeys::CreatedAt))
                .col(boolean(SigningKeys::Active))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ProtectedResources::Table)
                .col(text(ProtectedResources::Url).primary_key())
                .col(text_null(ProtectedResources::Scopes))
                .col(boolean(ProtectedResources::IsDefault).default(false))
                .col(big_integer(ProtectedResources::CreatedAt))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            ProtectedResources::Table.into_iden(),
            SigningKeys::Table.into_iden(),
            RevokedAccessTokens::Table.into_iden(),
            Consents::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            AuthorizationCodes::Table.into_iden(),
            Grants::Table.into_iden(),
            Clients::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
