//! When each client last changed, so that every replica can refresh only the clients changed
//! since its last look.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Clients {
    Table,
    UpdatedAt,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .add_column(
                    ColumnDef::new(Clients::UpdatedAt)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .to_owned(),
        )
        .await?;
        // Every existing client last changed when it was made, as far as anyone knows.
        m.exec_stmt(
            Query::update()
                .table(Clients::Table)
                .value(Clients::UpdatedAt, Expr::col(Clients::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_clients_updated_at")
                .table(Clients::Table)
                .col(Clients::UpdatedAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("idx_clients_updated_at")
                .table(Clients::Table)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .drop_column(Clients::UpdatedAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
