//! Scope hierarchies (MCP 2026-07-28): which of a protected resource's scopes imply others,
//! as the operator declared them. JSON text, an object from each scope to the list of scopes
//! it implies directly; absent on resources without one.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ProtectedResources {
    Table,
    ScopeImplications,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ProtectedResources::Table)
                .add_column(
                    ColumnDef::new(ProtectedResources::ScopeImplications)
                        .text()
                        .null(),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ProtectedResources::Table)
                .drop_column(ProtectedResources::ScopeImplications)
                .to_owned(),
        )
        .await
    }
}
