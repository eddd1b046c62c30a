//! Client trust tiers, the resources a client may get tokens for without a user, and the
//! single-use initial access tokens (RFC 7591 §3) that let an operator allow one registration.
//!
//! Existing clients get a tier from what can be known of them: a client that owns protected
//! resources was set up by an operator, and becomes `operator`, allowed `client_credentials`
//! for the resources it owns (the only ones an operator ever listed on it), with its redirect
//! URIs trusted. Every other client becomes `dynamic` and loses the grants that need no user.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, FromQueryResult};
use std::collections::HashMap;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
    GrantTypes,
    Metadata,
    Tier,
    Audiences,
    TrustedRedirects,
}

#[derive(DeriveIden)]
enum ClientResources {
    Table,
    ClientId,
    Resource,
}

#[derive(DeriveIden)]
enum InitialAccessTokens {
    Table,
    TokenHash,
    Audiences,
    Scope,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    UsedBy,
}

/// The grant types that involve no user. Spelled here, not imported: a migration states the
/// schema and data as they were when it was written.
const USERLESS_GRANTS: &[&str] = &["client_credentials"];

#[derive(FromQueryResult)]
struct ClientRow {
    id: String,
    grant_types: String,
    metadata: String,
}

#[derive(FromQueryResult)]
struct OwnedRow {
    client_id: String,
    resource: String,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .add_column(
                    ColumnDef::new(Clients::Tier)
                        .text()
                        .not_null()
                        .default("dynamic"),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .add_column(
                    ColumnDef::new(Clients::Audiences)
                        .text()
                        .not_null()
                        .default("[]"),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Clients::Table)
                .add_column(
                    ColumnDef::new(Clients::TrustedRedirects)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(InitialAccessTokens::Table)
                .col(text(InitialAccessTokens::TokenHash).primary_key())
                .col(text(InitialAccessTokens::Audiences))
                .col(text_null(InitialAccessTokens::Scope))
                .col(big_integer(InitialAccessTokens::CreatedAt))
                .col(big_integer(InitialAccessTokens::ExpiresAt))
                .col(big_integer_null(InitialAccessTokens::UsedAt))
                .col(text_null(InitialAccessTokens::UsedBy))
                .to_owned(),
        )
        .await?;

        let db = m.get_connection();
        let backend = db.get_database_backend();
        let owned_rows = OwnedRow::find_by_statement(
            backend.build(
                Query::select()
                    .columns([ClientResources::ClientId, ClientResources::Resource])
                    .from(ClientResources::Table),
            ),
        )
        .all(db)
        .await?;
        let mut owned: HashMap<String, Vec<String>> = HashMap::new();
        for r in owned_rows {
            owned.entry(r.client_id).or_default().push(r.resource);
        }
        let clients = ClientRow::find_by_statement(
            backend.build(
                Query::select()
                    .columns([Clients::Id, Clients::GrantTypes, Clients::Metadata])
                    .from(Clients::Table),
            ),
        )
        .all(db)
        .await?;
        for c in clients {
            let mut update = Query::update();
            update
                .table(Clients::Table)
                .and_where(Expr::col(Clients::Id).eq(c.id.clone()));
            match owned.get(&c.id) {
                Some(resources) => {
                    update.value(Clients::Tier, "operator");
                    update.value(Clients::TrustedRedirects, true);
                    if c.grant_types
                        .split(' ')
                        .any(|g| USERLESS_GRANTS.contains(&g))
                    {
                        let list = serde_json::Value::from(resources.clone()).to_string();
                        update.value(Clients::Audiences, list);
                    }
                }
                None => {
                    let kept: Vec<&str> = c
                        .grant_types
                        .split(' ')
                        .filter(|g| !g.is_empty() && !USERLESS_GRANTS.contains(g))
                        .collect();
                    update.value(Clients::GrantTypes, kept.join(" "));
                    // The metadata echoed to RFC 7592 readers says what is granted.
                    if let Ok(serde_json::Value::Object(mut meta)) =
                        serde_json::from_str::<serde_json::Value>(&c.metadata)
                    {
                        meta.insert("grant_types".into(), serde_json::Value::from(kept));
                        update.value(
                            Clients::Metadata,
                            serde_json::Value::Object(meta).to_string(),
                        );
                    }
                }
            }
            m.exec_stmt(update).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(InitialAccessTokens::Table).to_owned())
            .await?;
        for col in [Clients::TrustedRedirects, Clients::Audiences, Clients::Tier] {
            m.alter_table(
                Table::alter()
                    .table(Clients::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
