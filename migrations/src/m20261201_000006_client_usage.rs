//! How much each client is used (tokens issued, last use), written in batches by each replica
//! so that no request waits on it; `latchkey stats` and idle-client expiry read it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ClientUsage {
    Table,
    ClientId,
    TokensIssued,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ClientUsage::Table)
                .col(text(ClientUsage::ClientId).primary_key())
                .col(big_integer(ClientUsage::TokensIssued))
                .col(big_integer(ClientUsage::LastUsedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_client_usage_client")
                        .from(ClientUsage::Table, ClientUsage::ClientId)
                        .to(Clients::Table, Clients::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ClientUsage::Table).to_owned())
            .await
    }
}
