//! Grants are per install: each grant (and each recorded consent) keeps the install it was
//! made for, the redirect URI used with a loopback port left out, so that one device's grant
//! can be revoked while the user's other devices stay signed in. Rows from before have none.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Grants {
    Table,
    UserId,
    ClientId,
    Install,
}

#[derive(DeriveIden)]
enum Consents {
    Table,
    Install,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Grants::Table)
                .add_column(ColumnDef::new(Grants::Install).text().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Consents::Table)
                .add_column(ColumnDef::new(Consents::Install).text().null())
                .to_owned(),
        )
        .await?;
        // A user's grants are listed and revoked by user (and client).
        m.create_index(
            Index::create()
                .name("idx_grants_user_client")
                .table(Grants::Table)
                .col(Grants::UserId)
                .col(Grants::ClientId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("idx_grants_user_client")
                .table(Grants::Table)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Consents::Table)
                .drop_column(Consents::Install)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Grants::Table)
                .drop_column(Grants::Install)
                .to_owned(),
        )
        .await
    }
}
