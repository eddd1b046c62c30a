//! Signing keys sign from an instant (`activates_at`) instead of by an `active` flag, so that
//! rotation is publish-before-use and every replica switches at the same moment.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    ActivatesAt,
    CreatedAt,
    Active,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(SigningKeys::Table)
                .add_column(
                    ColumnDef::new(SigningKeys::ActivatesAt)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .to_owned(),
        )
        .await?;
        // Existing keys signed from their creation.
        m.exec_stmt(
            Query::update()
                .table(SigningKeys::Table)
                .value(SigningKeys::ActivatesAt, Expr::col(SigningKeys::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(SigningKeys::Table)
                .drop_column(SigningKeys::Active)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(SigningKeys::Table)
                .add_column(
                    ColumnDef::new(SigningKeys::Active)
                        .boolean()
                        .not_null()
                        .default(true),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(SigningKeys::Table)
                .drop_column(SigningKeys::ActivatesAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
