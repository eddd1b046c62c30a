//! Revocation as an append-only event log that every replica replays into memory, and the
//! resources each confidential client owns (which tokens it may verify or introspect).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RevocationEvents {
    Table,
    Id,
    Kind,
    Subject,
    RevokedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum ClientResources {
    Table,
    ClientId,
    Resource,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum RevokedAccessTokens {
    Table,
    Jti,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(RevocationEvents::Table)
                .col(text(RevocationEvents::Id).primary_key())
                .col(text(RevocationEvents::Kind))
                .col(text(RevocationEvents::Subject))
                .col(big_integer(RevocationEvents::RevokedAt))
                .col(big_integer(RevocationEvents::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_revocation_events_revoked_at")
                .table(RevocationEvents::Table)
                .col(RevocationEvents::RevokedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ClientResources::Table)
                .col(text(ClientResources::ClientId))
                .col(text(ClientResources::Resource))
                .primary_key(
                    Index::create()
                        .col(ClientResources::ClientId)
                        .col(ClientResources::Resource),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_client_resources_client")
                        .from(ClientResources::Table, ClientResources::ClientId)
                        .to(Clients::Table, Clients::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // Superseded by revocation_events (kind = "token").
        m.drop_table(Table::drop().table(RevokedAccessTokens::Table).to_owned())
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ClientResources::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(RevocationEvents::Table).to_owned())
            .await?;
        m.create_table(
            Table::create()
                .table(RevokedAccessTokens::Table)
                .col(text(RevokedAccessTokens::Jti).primary_key())
                .col(big_integer(RevokedAccessTokens::ExpiresAt))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
