//! RFC 7592: the SHA-256 of a self-registered client's registration access token, with which
//! it reads, replaces and deletes its own registration. Clients registered before this
//! migration have none, and cannot be managed that way (they can register again).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Clients {
    Table,
    RegistrationTokenHash,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .add_column(ColumnDef::new(Clients::RegistrationTokenHash).text().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .drop_column(Clients::RegistrationTokenHash)
                .to_owned(),
        )
        .await
    }
}
