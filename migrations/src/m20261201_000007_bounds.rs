//! Bounds on storage: when a dynamic client's secret expires (RFC 7591 §3.2.1
//! `client_secret_expires_at`), which client made each revocation event (so that what one
//! client can add to the log is counted), and the indexes the counts and the idle-client
//! purge read.
//!
//! Self-registered clients unused for a while are deleted from this release on, judged by the
//! usage figures. Those figures only exist since migration 6, so a client used before that
//! would look idle since its registration: every client without figures gets a last use of
//! now, the upgrade, and its idle period starts here.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
    SecretExpiresAt,
    Tier,
}

#[derive(DeriveIden)]
enum RevocationEvents {
    Table,
    ClientId,
}

#[derive(DeriveIden)]
enum AuthorizationCodes {
    Table,
    ClientId,
}

#[derive(DeriveIden)]
enum ClientUsage {
    Table,
    ClientId,
    TokensIssued,
    LastUsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .add_column(
                    ColumnDef::new(Clients::SecretExpiresAt)
                        .big_integer()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(RevocationEvents::Table)
                .add_column(ColumnDef::new(RevocationEvents::ClientId).text().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_revocation_events_client_id")
                .table(RevocationEvents::Table)
                .col(RevocationEvents::ClientId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_clients_tier")
                .table(Clients::Table)
                .col(Clients::Tier)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_authorization_codes_client_id")
                .table(AuthorizationCodes::Table)
                .col(AuthorizationCodes::ClientId)
                .to_owned(),
        )
        .await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| {
                <i64 as TryFrom<u64>>::try_from(d.as_secs()).unwrap_or(i64::MAX)
            });
        let without_figures = Query::select()
            .column(Clients::Id)
            .expr(Expr::val(0i64))
            .expr(Expr::val(now))
            .from(Clients::Table)
            .and_where(
                Expr::col(Clients::Id).not_in_subquery(
                    Query::select()
                        .column(ClientUsage::ClientId)
                        .from(ClientUsage::Table)
                        .to_owned(),
                ),
            )
            .to_owned();
        m.exec_stmt(
            Query::insert()
                .into_table(ClientUsage::Table)
                .columns([
                    ClientUsage::ClientId,
                    ClientUsage::TokensIssued,
                    ClientUsage::LastUsedAt,
                ])
                .select_from(without_figures)
                .map_err(|e| DbErr::Custom(e.to_string()))?
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            (
                "idx_authorization_codes_client_id",
                AuthorizationCodes::Table.into_iden(),
            ),
            ("idx_clients_tier", Clients::Table.into_iden()),
            (
                "idx_revocation_events_client_id",
                RevocationEvents::Table.into_iden(),
            ),
        ] {
            m.drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        m.alter_table(
            Table::alter()
                .table(RevocationEvents::Table)
                .drop_column(RevocationEvents::ClientId)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .drop_column(Clients::SecretExpiresAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
