//! What `private_key_jwt` and Client ID Metadata Documents share between replicas: the
//! client assertions already used, and the documents already fetched.

use crate::convert::{at, ts};
use crate::entity::{client_documents, used_client_assertions};
use crate::{SeaStore, backend};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use latchkey_core::store::{AssertionStore, DocumentStore, StoreResult, StoredDocument};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, SqlErr};

#[async_trait]
impl AssertionStore for SeaStore {
    /// An insert, which the primary key makes single-use; a pair recorded before and expired
    /// since is taken over by a conditional update, which of two callers only one wins.
    async fn use_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.guard(async {
            let row = used_client_assertions::ActiveModel {
                client_id: sea_orm::Set(client_id.to_owned()),
                jti: sea_orm::Set(jti.to_owned()),
                expires_at: sea_orm::Set(ts(expires_at)),
            };
            match used_client_assertions::Entity::insert(row)
                .exec(&self.db)
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                    let res = used_client_assertions::Entity::update_many()
                        .col_expr(
                            used_client_assertions::Column::ExpiresAt,
                            Expr::value(ts(expires_at)),
                        )
                        .filter(used_client_assertions::Column::ClientId.eq(client_id))
                        .filter(used_client_assertions::Column::Jti.eq(jti))
                        .filter(used_client_assertions::Column::ExpiresAt.lte(ts(now)))
                        .exec(&self.db)
                        .await
                        .map_err(backend)?;
                    Ok(res.rows_affected == 1)
                }
                Err(e) => Err(backend(e)),
            }
        })
        .await
    }
}

#[async_trait]
impl DocumentStore for SeaStore {
    async fn find_document(&self, client_id: &str) -> StoreResult<Option<StoredDocument>> {
        self.guard(async {
            Ok(client_documents::Entity::find_by_id(client_id.to_owned())
                .one(&self.db)
                .await
                .map_err(backend)?
                .map(|m| StoredDocument {
                    client_id: m.client_id,
                    body: m.body.into_bytes(),
                    fetched_at: at(m.fetched_at),
                    expires_at: at(m.expires_at),
                }))
        })
        .await
    }

    async fn put_document(&self, doc: &StoredDocument) -> StoreResult<()> {
        // Only JSON is kept, which is UTF-8; anything else is not worth sharing.
        let Ok(body) = String::from_utf8(doc.body.clone()) else {
            return Ok(());
        };
        self.guard(async {
            let row = client_documents::ActiveModel {
                client_id: sea_orm::Set(doc.client_id.clone()),
                body: sea_orm::Set(body),
                fetched_at: sea_orm::Set(ts(doc.fetched_at)),
                expires_at: sea_orm::Set(ts(doc.expires_at)),
            };
            client_documents::Entity::insert(row)
                .on_conflict(
                    OnConflict::column(client_documents::Column::ClientId)
                        .update_columns([
                            client_documents::Column::Body,
                            client_documents::Column::FetchedAt,
                            client_documents::Column::ExpiresAt,
                        ])
                        .to_owned(),
                )
                .exec(&self.db)
                .await
                .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
