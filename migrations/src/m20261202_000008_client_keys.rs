//! What `private_key_jwt` (RFC 7523 §2.2) and Client ID Metadata Documents need stored:
//! - a client's public keys, as a JWK Set (`jwks`) or where to fetch one (`jwks_uri`);
//! - the client assertions already used, by client and `jti`, until they expire, so that an
//!   assertion is single-use across every replica;
//! - the metadata documents fetched, so that replicas share one fetch per freshness period.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, text};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Clients {
    Table,
    Jwks,
    JwksUri,
}

#[derive(DeriveIden)]
enum UsedClientAssertions {
    Table,
    ClientId,
    Jti,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum ClientDocuments {
    Table,
    ClientId,
    Body,
    FetchedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .add_column(ColumnDef::new(Clients::Jwks).text().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .add_column(ColumnDef::new(Clients::JwksUri).text().null())
                .to_owned(),
        )
        .await?;
        // No foreign key to clients: an assertion is judged before the client is known to
        // have a row (a document's client has none until a user approves it).
        m.create_table(
            Table::create()
                .table(UsedClientAssertions::Table)
                .col(text(UsedClientAssertions::ClientId))
                .col(text(UsedClientAssertions::Jti))
                .col(big_integer(UsedClientAssertions::ExpiresAt))
                .primary_key(
                    Index::create()
                        .col(UsedClientAssertions::ClientId)
                        .col(UsedClientAssertions::Jti),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_used_client_assertions_expires_at")
                .table(UsedClientAssertions::Table)
                .col(UsedClientAssertions::ExpiresAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ClientDocuments::Table)
                .col(text(ClientDocuments::ClientId).primary_key())
                .col(text(ClientDocuments::Body))
                .col(big_integer(ClientDocuments::FetchedAt))
                .col(big_integer(ClientDocuments::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_client_documents_expires_at")
                .table(ClientDocuments::Table)
                .col(ClientDocuments::ExpiresAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ClientDocuments::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(UsedClientAssertions::Table).to_owned())
            .await?;
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .drop_column(Clients::JwksUri)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .drop_column(Clients::Jwks)
                .to_owned(),
        )
        .await
    }
}
