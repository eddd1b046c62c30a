//! latchkey-store: the core's storage traits implemented with sea-orm, on PostgreSQL or
//! SQLite from the same code.
//!
//! Single-use redemption is a conditional `UPDATE … WHERE consumed_at IS NULL` inside a
//! transaction: the database, not the process, decides which of two concurrent requests
//! wins, so it holds across replicas too.

mod availability;
mod client_keys;
mod convert;
mod entity;

pub use availability::PoolSettings;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use convert::ts;
use entity::*;
use latchkey_core::denylist::{RevocationEvent, RevokedKind};
use latchkey_core::model::{
    AuthorizationCode, Client, ClientTier, Grant, InitialAccessToken, RefreshToken,
    StoredSigningKey, User,
};
use latchkey_core::resource::ProtectedResource;
use latchkey_core::store::{
    ClientStore, ClientUsage, Expired, GrantStore, KeyStore, MaintenanceStore, ResourceStore,
    RevocationStore, StoreError, StoreResult, StoreStats, UserStore,
};
use latchkey_migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectOptions, ConnectionTrait, Database,
    DatabaseConnection, DbBackend, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    SqlErr, TransactionTrait,
};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The sea-orm backed store.
#[derive(Debug, Clone)]
pub struct SeaStore {
    db: DatabaseConnection,
    /// PostgreSQL only: fails fast while the database is unreachable (`availability.rs`).
    breaker: Option<Arc<availability::Breaker>>,
}

/// How long a readiness check waits for the database: a probe must answer within a second.
const PING_BUDGET: Duration = Duration::from_millis(500);

fn backend(e: DbErr) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn insert_err(what: &'static str) -> impl Fn(DbErr) -> StoreError {
    move |e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => StoreError::Duplicate(what),
        _ => backend(e),
    }
}

impl SeaStore {
    async fn client_resources(&self, id: &str) -> StoreResult<Vec<String>> {
        Ok(client_resources::Entity::find()
            .filter(client_resources::Column::ClientId.eq(id))
            .all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(|r| r.resource)
            .collect())
    }

    /// Connects to `url` (`sqlite://file.db?mode=rwc` or `postgres://…`) with the default
    /// [`PoolSettings`].
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        Self::connect_with(url, PoolSettings::default()).await
    }

    /// Connects to `url`; `pool` applies to PostgreSQL (see `availability.rs`).
    pub async fn connect_with(url: &str, pool: PoolSettings) -> Result<Self, DbErr> {
        let sqlite = url.starts_with("sqlite:");
        let max_connections = if sqlite { 8 } else { 20 };
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.sqlx_logging(false)
            .max_connections(max_connections)
            // SQLite: a writer may wait for the file lock, and nothing else can make it wait.
            .acquire_timeout(if sqlite {
                Duration::from_secs(10)
            } else {
                pool.acquire_timeout
            })
            .map_sqlx_sqlite_opts(|o| {
                // WAL lets readers run beside the one writer; the busy timeout makes a writer
                // wait for the lock instead of failing.
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        Ok(Self {
            db: Database::connect(opts).await?,
            breaker: (!sqlite).then(|| Arc::new(availability::Breaker::new(pool))),
        })
    }

    /// The rows of `E` that `condition` selects: deleted, or with `dry_run` only counted.
    async fn purge<E>(&self, condition: Condition, dry_run: bool) -> StoreResult<u64>
    where
        E: EntityTrait,
        E::Model: Sync,
    {
        use sea_orm::PaginatorTrait;
        if dry_run {
            E::find().filter(condition).count(&self.db).await
        } else {
            E::delete_many()
                .filter(condition)
                .exec(&self.db)
                .await
                .map(|r| r.rows_affected)
        }
        .map_err(backend)
    }

    /// Runs one storage operation through the breaker: refused at once while the database
    /// is known to be unreachable; otherwise run, and what its outcome says about the
    /// database recorded. Unreachability becomes [`StoreError::DatabaseUnavailable`].
    async fn guard<T>(
        &self,
        op: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let Some(breaker) = &self.breaker else {
            return op.await;
        };
        let ticket = breaker.admit()?;
        let result = op.await;
        let failure = match &result {
            Ok(_) => availability::Failure::Answered,
            Err(e) => availability::classify(e, || breaker.answered_lately()),
        };
        match (failure, result) {
            (availability::Failure::Answered, result) => {
                ticket.reachable();
                result
            }
            (availability::Failure::Busy, _) => {
                // Proves nothing either way: it must not count as an answer, or a pool that
                // stays busy through the start of an outage would never let the breaker open.
                drop(ticket);
                Err(StoreError::DatabaseUnavailable {
                    retry_after_secs: 1,
                })
            }
            (availability::Failure::Unreachable, result) => {
                match &result {
                    Err(StoreError::Backend(cause)) => ticket.unreachable(cause),
                    _ => ticket.unreachable(&"unreachable"),
                }
                Err(breaker.refusal())
            }
        }
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.db, None).await
    }

    /// Whether the database answers, within half a second. While the breaker is open this
    /// answers `false` at once; when a probe is due, this ping may be it. A ping that only
    /// ran out of time does not open the breaker: a slow answer is not proof of an outage.
    pub async fn ping(&self) -> bool {
        let ticket = match &self.breaker {
            Some(b) => match b.admit() {
                Ok(t) => Some(t),
                Err(_) => return false,
            },
            None => None,
        };
        match tokio::time::timeout(PING_BUDGET, self.db.ping()).await {
            Ok(Ok(())) => {
                if let Some(t) = ticket {
                    t.reachable();
                }
                true
            }
            Ok(Err(e)) => {
                let e = backend(e);
                if let (Some(t), Some(b)) = (ticket, &self.breaker) {
                    match availability::classify(&e, || b.answered_lately()) {
                        availability::Failure::Unreachable => match &e {
                            StoreError::Backend(cause) => t.unreachable(cause),
                            other => t.unreachable(other),
                        },
                        availability::Failure::Answered => t.reachable(),
                        availability::Failure::Busy => drop(t),
                    }
                }
                false
            }
            // No answer within the budget. Others' queries completing meanwhile mean a busy
            // pool, not a dead database; a SQLite file that is slow is busy, never gone.
            Err(_) => self.breaker.as_ref().is_none_or(|b| b.answered_lately()),
        }
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }
}

#[async_trait]
impl ClientStore for SeaStore {
    async fn insert_client(&self, c: &Client) -> StoreResult<()> {
        self.guard(async {
            let txn = self.db.begin().await.map_err(backend)?;
            insert_client_rows(&txn, c).await?;
            txn.commit().await.map_err(backend)
        })
        .await
    }

    async fn clients_updated_since(&self, since: i64) -> StoreResult<Vec<Client>> {
        self.guard(async {
            let models = clients::Entity::find()
                .filter(clients::Column::UpdatedAt.gte(since))
                .all(&self.db)
                .await
                .map_err(backend)?;
            let mut out = Vec::with_capacity(models.len());
            for m in models {
                let resources = self.client_resources(&m.id).await?;
                out.push(convert::client(m, resources)?);
            }
            Ok(out)
        })
        .await
    }

    async fn set_client_tier(
        &self,
        id: &str,
        tier: ClientTier,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.guard(async {
            let res = clients::Entity::update_many()
                .col_expr(clients::Column::Tier, Expr::value(tier.as_str()))
                .col_expr(clients::Column::UpdatedAt, Expr::value(ts(now)))
                .filter(clients::Column::Id.eq(id))
                .exec(&self.db)
                .await
                .map_err(backend)?;
            Ok(res.rows_affected > 0)
        })
        .await
    }

    async fn replace_client_metadata(
        &self,
        c: &Client,
        registration_token_hash: &str,
    ) -> StoreResult<bool> {
        // The columns as an insert would write them, so both paths store one form.
        let m = convert::client_model(c);
        self.guard(async {
            let res = clients::Entity::update_many()
                .col_expr(clients::Column::Name, Expr::value(m.name))
                .col_expr(clients::Column::RedirectUris, Expr::value(m.redirect_uris))
                .col_expr(clients::Column::GrantTypes, Expr::value(m.grant_types))
                .col_expr(clients::Column::AuthMethod, Expr::value(m.auth_method))
                .col_expr(clients::Column::Scope, Expr::value(m.scope))
                .col_expr(clients::Column::Metadata, Expr::value(m.metadata))
                .col_expr(clients::Column::Jwks, Expr::value(m.jwks))
                .col_expr(clients::Column::JwksUri, Expr::value(m.jwks_uri))
                .col_expr(clients::Column::SecretHash, Expr::value(m.secret_hash))
                .col_expr(
                    clients::Column::SecretExpiresAt,
                    Expr::value(m.secret_expires_at),
                )
                .col_expr(clients::Column::UpdatedAt, Expr::value(m.updated_at))
                .filter(clients::Column::Id.eq(m.id))
                .filter(clients::Column::Tier.eq(m.tier))
                .filter(clients::Column::RegistrationTokenHash.eq(registration_token_hash))
                .exec(&self.db)
                .await
                .map_err(backend)?;
            Ok(res.rows_affected == 1)
        })
        .await
    }

    async fn insert_initial_access_token(&self, t: &InitialAccessToken) -> StoreResult<()> {
        self.guard(async {
            initial_access_tokens::Entity::insert(
                convert::initial_access_token_model(t).into_active_model(),
            )
            .exec_without_returning(&self.db)
            .await
            .map_err(insert_err("initial access token"))?;
            Ok(())
        })
        .await
    }

    async fn find_initial_access_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<InitialAccessToken>> {
        self.guard(async {
            initial_access_tokens::Entity::find_by_id(token_hash.to_owned())
                .one(&self.db)
                .await
                .map_err(backend)?
                .map(convert::initial_access_token)
                .transpose()
        })
        .await
    }

    async fn insert_client_redeeming(
        &self,
        c: &Client,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.guard(async {
            let txn = self.db.begin().await.map_err(backend)?;
            let res = initial_access_tokens::Entity::update_many()
                .col_expr(initial_access_tokens::Column::UsedAt, Expr::value(ts(now)))
                .col_expr(
                    initial_access_tokens::Column::UsedBy,
                    Expr::value(c.id.clone()),
                )
                .filter(initial_access_tokens::Column::TokenHash.eq(token_hash))
                .filter(initial_access_tokens::Column::UsedAt.is_null())
                .filter(initial_access_tokens::Column::ExpiresAt.gt(ts(now)))
                .exec(&txn)
                .await
                .map_err(backend)?;
            if res.rows_affected != 1 {
                txn.rollback().await.map_err(backend)?;
                return Ok(false);
            }
            insert_client_rows(&txn, c).await?;
            txn.commit().await.map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn find_client(&self, id: &str) -> StoreResult<Option<Client>> {
        self.guard(async {
            let Some(m) = clients::Entity::find_by_id(id.to_owned())
                .one(&self.db)
                .await
                .map_err(backend)?
            else {
                return Ok(None);
            };
            let resources = self.client_resources(id).await?;
            convert::client(m, resources).map(Some)
        })
        .await
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        self.guard(async {
            let models = clients::Entity::find()
                .order_by_asc(clients::Column::CreatedAt)
                .all(&self.db)
                .await
                .map_err(backend)?;
            let mut owned: std::collections::HashMap<String, Vec<String>> =
                std::collections::HashMap::new();
            for r in client_resources::Entity::find()
                .all(&self.db)
                .await
                .map_err(backend)?
            {
                owned.entry(r.client_id).or_default().push(r.resource);
            }
            models
                .into_iter()
                .map(|m| {
                    let resources = owned.remove(&m.id).unwrap_or_default();
                    convert::client(m, resources)
                })
                .collect()
        })
        .await
    }

    async fn set_client_resources(
        &self,
        id: &str,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.guard(async {
            let txn = self.db.begin().await.map_err(backend)?;
            clients::Entity::update_many()
                .col_expr(clients::Column::UpdatedAt, Expr::value(ts(now)))
                .filter(clients::Column::Id.eq(id))
                .exec(&txn)
                .await
                .map_err(backend)?;
            if clients::Entity::find_by_id(id.to_owned())
                .one(&txn)
                .await
                .map_err(backend)?
                .is_none()
            {
                txn.rollback().await.map_err(backend)?;
                return Ok(false);
            }
            client_resources::Entity::delete_many()
                .filter(client_resources::Column::ClientId.eq(id))
                .exec(&txn)
                .await
                .map_err(backend)?;
            for r in resources {
                let row = client_resources::Model {
                    client_id: id.to_owned(),
                    resource: r.clone(),
                };
                client_resources::Entity::insert(row.into_active_model())
                    .exec_without_returning(&txn)
                    .await
                    .map_err(backend)?;
            }
            txn.commit().await.map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn delete_client(&self, id: &str) -> StoreResult<bool> {
        self.guard(async {
            // Foreign keys cascade to grants (and through them codes and refresh tokens),
            // consents, usage figures and owned resources.
            let res = clients::Entity::delete_by_id(id.to_owned())
                .exec(&self.db)
                .await
                .map_err(backend)?;
            Ok(res.rows_affected > 0)
        })
        .await
    }

    async fn count_clients(&self, tier: ClientTier) -> StoreResult<u64> {
        use sea_orm::PaginatorTrait;
        self.guard(async {
            clients::Entity::find()
                .filter(clients::Column::Tier.eq(tier.as_str()))
                .count(&self.db)
                .await
                .map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl UserStore for SeaStore {
    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        self.guard(async {
            users::Entity::insert(convert::user_model(u).into_active_model())
                .exec_without_returning(&self.db)
                .await
                .map_err(insert_err("email"))?;
            Ok(())
        })
        .await
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        self.guard(async {
            users::Entity::find()
                .filter(users::Column::Email.eq(email))
                .one(&self.db)
                .await
                .map_err(backend)?
                .map(convert::user)
                .transpose()
        })
        .await
    }

    async fn find_user(&self, id: Uuid) -> StoreResult<Option<User>> {
        self.guard(async {
            users::Entity::find_by_id(id.to_string())
                .one(&self.db)
                .await
                .map_err(backend)?
                .map(convert::user)
                .transpose()
        })
        .await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.guard(async {
            users::Entity::find()
                .order_by_asc(users::Column::Email)
                .all(&self.db)
                .await
                .map_err(backend)?
                .into_iter()
                .map(convert::user)
                .collect()
        })
        .await
    }

    async fn set_user_disabled(&self, email: &str, disabled: bool) -> StoreResult<Option<User>> {
        self.guard(async {
            users::Entity::update_many()
                .col_expr(users::Column::Disabled, Expr::value(disabled))
                .filter(users::Column::Email.eq(email))
                .exec(&self.db)
                .await
                .map_err(backend)?;
            // Read inline rather than through `find_user_by_email`: one operation, one pass
            // through the breaker.
            users::Entity::find()
                .filter(users::Column::Email.eq(email))
                .one(&self.db)
                .await
                .map_err(backend)?
                .map(convert::user)
                .transpose()
        })
        .await
    }
}

#[async_trait]
impl GrantStore for SeaStore {
    async fn insert_grant_with_code(
        &self,
        grant: &Grant,
        code: &AuthorizationCode,
    ) -> StoreResult<()> {
        self.guard(async {
            let txn = self.db.begin().await.map_err(backend)?;
            grants::Entity::insert(convert::grant_model(grant).into_active_model())
                .exec_without_returning(&txn)
                .await
                .map_err(backend)?;
            authorization_codes::Entity::insert(convert::code_model(code).into_active_model())
                .exec_without_returning(&txn)
                .await
                .map_err(backend)?;
            txn.commit().await.map_err(backend)
        })
        .await
    }

    async fn find_code(&self, code_hash: &str) -> StoreResult<Option<AuthorizationCode>> {
        self.guard(async {
            authorization_codes::Entity::find_by_id(code_hash.to_owned())
                .one(&self.db)
                .await
                .map_err(backend)?
                .map(convert::code)
                .transpose()
        })
        .await
    }

    async fn redeem_code(
        &self,
        code_hash: &str,
        now: DateTime<Utc>,
        refresh: Option<&RefreshToken>,
    ) -> StoreResult<bool> {
        self.guard(async {
            let txn = self.db.begin().await.map_err(backend)?;
            let res = authorization_codes::Entity::update_many()
                .col_expr(
                    authorization_codes::Column::ConsumedAt,
                    Expr::value(ts(now)),
                )
                .filter(authorization_codes::Column::CodeHash.eq(code_hash))
                .filter(authorization_codes::Column::ConsumedAt.is_null())
                .exec(&txn)
                .await
                .map_err(backend)?;
            finish_single_use(txn, res.rows_affected, refresh).await
        })
        .await
    }

    async fn find_grant(&self, id: Uuid) -> StoreResult<Option<Grant>> {
        self.guard(async {
            grants::Entity::find_by_id(id.to_string())
                .one(&self.db)
                .await
                .map_err(backend)?
                .map(convert::grant)
                .transpose()
        })
        .await
    }

    async fn live_grants_of_user(&self, user_id: Uuid) -> StoreResult<Vec<Grant>> {
        self.guard(async {
            grants::Entity::find()
                .filter(grants::Column::UserId.eq(user_id.to_string()))
                .filter(grants::Column::RevokedAt.is_null())
                .order_by_asc(grants::Column::CreatedAt)
                .all(&self.db)
                .await
                .map_err(backend)?
                .into_iter()
                .map(convert::grant)
                .collect()
        })
        .await
    }

    async fn revoke_grant(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
        self.guard(async {
            let res = grants::Entity::update_many()
                .col_expr(grants::Column::RevokedAt, Expr::value(ts(now)))
                .filter(grants::Column::Id.eq(id.to_string()))
                .filter(grants::Column::RevokedAt.is_null())
                .exec(&self.db)
                .await
                .map_err(backend)?;
            Ok(res.rows_affected == 1)
        })
        .await
    }

    async fn find_refresh_token(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
        self.guard(async {
            refresh_tokens::Entity::find_by_id(token_hash.to_owned())
                .one(&self.db)
                .await
                .map_err(backend)?
                .map(convert::refresh)
                .transpose()
        })
        .await
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        now: DateTime<Utc>,
        new: &RefreshToken,
    ) -> StoreResult<bool> {
        self.guard(async {
            let txn = self.db.begin().await.map_err(backend)?;
            let res = refresh_tokens::Entity::update_many()
                .col_expr(refresh_tokens::Column::ConsumedAt, Expr::value(ts(now)))
                .filter(refresh_tokens::Column::TokenHash.eq(old_hash))
                .filter(refresh_tokens::Column::ConsumedAt.is_null())
                .exec(&txn)
                .await
                .map_err(backend)?;
            finish_single_use(txn, res.rows_affected, Some(new)).await
        })
        .await
    }

    async fn record_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        install: &str,
        scope: &str,
        resource: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.guard(async {
            consents::ActiveModel::from(consents::Model {
                id: Uuid::new_v4().to_string(),
                user_id: user_id.to_string(),
                client_id: client_id.to_owned(),
                scope: scope.to_owned(),
                resource: resource.to_owned(),
                granted_at: ts(now),
                install: Some(install.to_owned()),
            })
            .insert(&self.db)
            .await
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl RevocationStore for SeaStore {
    async fn record_revocation(&self, ev: &RevocationEvent) -> StoreResult<()> {
        self.guard(async {
            let row = revocation_events::Model {
                id: ev.id.clone(),
                kind: ev.kind.as_str().to_owned(),
                subject: ev.subject.clone(),
                revoked_at: ev.revoked_at,
                expires_at: ev.expires_at,
                client_id: ev.client_id.clone(),
            };
            revocation_events::Entity::insert(row.into_active_model())
                .exec_without_returning(&self.db)
                .await
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn revocations_since(&self, since: i64, now: i64) -> StoreResult<Vec<RevocationEvent>> {
        self.guard(async {
            revocation_events::Entity::find()
                .filter(revocation_events::Column::RevokedAt.gte(since))
                .filter(revocation_events::Column::ExpiresAt.gt(now))
                .all(&self.db)
                .await
                .map_err(backend)?
                .into_iter()
                .map(convert::revocation)
                .collect()
        })
        .await
    }

    async fn prune_revocations(&self, now: i64) -> StoreResult<u64> {
        self.guard(async {
            let res = revocation_events::Entity::delete_many()
                .filter(revocation_events::Column::ExpiresAt.lte(now))
                .exec(&self.db)
                .await
                .map_err(backend)?;
            Ok(res.rows_affected)
        })
        .await
    }

    async fn count_token_revocations(&self, client_id: &str, now: i64) -> StoreResult<u64> {
        use sea_orm::PaginatorTrait;
        self.guard(async {
            revocation_events::Entity::find()
                .filter(revocation_events::Column::ClientId.eq(client_id))
                .filter(revocation_events::Column::Kind.eq(RevokedKind::Token.as_str()))
                .filter(revocation_events::Column::ExpiresAt.gt(now))
                .count(&self.db)
                .await
                .map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl KeyStore for SeaStore {
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        self.guard(async {
            signing_keys::Entity::find()
                .order_by_asc(signing_keys::Column::ActivatesAt)
                .all(&self.db)
                .await
                .map_err(backend)?
                .into_iter()
                .map(convert::key)
                .collect()
        })
        .await
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        self.guard(async {
            signing_keys::Entity::insert(convert::key_model(key).into_active_model())
                .exec_without_returning(&self.db)
                .await
                .map_err(insert_err("signing key"))?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl ResourceStore for SeaStore {
    async fn list_resources(&self) -> StoreResult<Vec<ProtectedResource>> {
        self.guard(async {
            Ok(protected_resources::Entity::find()
                .order_by_asc(protected_resources::Column::CreatedAt)
                .all(&self.db)
                .await
                .map_err(backend)?
                .into_iter()
                .map(convert::resource)
                .collect())
        })
        .await
    }

    async fn insert_resource(&self, r: &ProtectedResource) -> StoreResult<()> {
        self.guard(async {
            let txn = self.db.begin().await.map_err(backend)?;
            if r.is_default {
                protected_resources::Entity::update_many()
                    .col_expr(protected_resources::Column::IsDefault, Expr::value(false))
                    .exec(&txn)
                    .await
                    .map_err(backend)?;
            }
            let row = protected_resources::Model {
                url: r.resource.as_str().to_owned(),
                scopes: r.scopes.as_ref().map(ToString::to_string),
                is_default: r.is_default,
                created_at: ts(Utc::now()),
                scope_implications: convert::scope_implications(&r.implies),
            };
            protected_resources::Entity::insert(row.into_active_model())
                .exec_without_returning(&txn)
                .await
                .map_err(insert_err("resource"))?;
            txn.commit().await.map_err(backend)
        })
        .await
    }

    async fn delete_resource(&self, url: &str) -> StoreResult<bool> {
        self.guard(async {
            let res = protected_resources::Entity::delete_by_id(url.to_owned())
                .exec(&self.db)
                .await
                .map_err(backend)?;
            Ok(res.rows_affected > 0)
        })
        .await
    }
}

/// The single-use step shared by codes and refresh tokens: `consumed` is the row count of
/// the conditional `UPDATE … WHERE consumed_at IS NULL`. Only its one winner stores `next`
/// and commits; a loser rolls back, having written nothing.
async fn finish_single_use(
    txn: sea_orm::DatabaseTransaction,
    consumed: u64,
    next: Option<&RefreshToken>,
) -> StoreResult<bool> {
    if consumed != 1 {
        txn.rollback().await.map_err(backend)?;
        return Ok(false);
    }
    if let Some(r) = next {
        refresh_tokens::Entity::insert(convert::refresh_model(r).into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(backend)?;
    }
    txn.commit().await.map_err(backend)?;
    Ok(true)
}

/// How long a code is kept past its expiry: a replay that late still revokes what it issued.
const CODE_KEPT_SECS: i64 = 24 * 3600;
/// The longest a code lives (the configuration refuses more): a grant younger than this and
/// [`CODE_KEPT_SECS`] may still have a code on its way.
const LONGEST_CODE_SECS: i64 = 600;

/// The conditions of [`MaintenanceStore::purge_expired`], shared by the count and the delete.
struct PurgeRules {
    now: i64,
}

impl PurgeRules {
    /// Codes a day past their expiry.
    fn codes(&self) -> Condition {
        Condition::all().add(authorization_codes::Column::ExpiresAt.lte(self.now - CODE_KEPT_SECS))
    }

    fn revoked_grants() -> sea_orm::sea_query::SelectStatement {
        Query::select()
            .column(grants::Column::Id)
            .from(grants::Entity)
            .and_where(grants::Column::RevokedAt.is_not_null())
            .to_owned()
    }

    /// Refresh tokens past their expiry, and any of a revoked grant.
    fn refresh_tokens(&self) -> Condition {
        Condition::any()
            .add(refresh_tokens::Column::ExpiresAt.lte(self.now))
            .add(refresh_tokens::Column::GrantId.in_subquery(Self::revoked_grants()))
    }

    /// Grants past the age at which a code may still come, with no code and no refresh
    /// token that the same purge keeps.
    fn grants(&self) -> Condition {
        let kept_codes = Query::select()
            .column(authorization_codes::Column::GrantId)
            .from(authorization_codes::Entity)
            .and_where(authorization_codes::Column::ExpiresAt.gt(self.now - CODE_KEPT_SECS))
            .to_owned();
        let kept_refresh = Query::select()
            .column(refresh_tokens::Column::GrantId)
            .from(refresh_tokens::Entity)
            .and_where(refresh_tokens::Column::ExpiresAt.gt(self.now))
            .to_owned();
        Condition::all()
            .add(grants::Column::CreatedAt.lte(self.now - CODE_KEPT_SECS - LONGEST_CODE_SECS))
            .add(grants::Column::Id.not_in_subquery(kept_codes))
            .add(
                Condition::any()
                    .add(grants::Column::RevokedAt.is_not_null())
                    .add(grants::Column::Id.not_in_subquery(kept_refresh)),
            )
    }

    fn initial_access_tokens(&self) -> Condition {
        Condition::all().add(initial_access_tokens::Column::ExpiresAt.lte(self.now))
    }

    fn revocation_events(&self) -> Condition {
        Condition::all().add(revocation_events::Column::ExpiresAt.lte(self.now))
    }
}

#[async_trait]
impl MaintenanceStore for SeaStore {
    async fn purge_expired(&self, now: DateTime<Utc>, dry_run: bool) -> StoreResult<Expired> {
        self.guard(async {
            let rules = PurgeRules { now: ts(now) };
            // Codes and refresh tokens before grants: a grant is judged by what this purge keeps,
            // so the order changes nothing in what goes, but this way a dead grant has nothing
            // left to cascade to, and the counts are those of the dry run.
            Ok(Expired {
                codes: self
                    .purge::<authorization_codes::Entity>(rules.codes(), dry_run)
                    .await?,
                refresh_tokens: self
                    .purge::<refresh_tokens::Entity>(rules.refresh_tokens(), dry_run)
                    .await?,
                grants: self
                    .purge::<grants::Entity>(rules.grants(), dry_run)
                    .await?,
                initial_access_tokens: self
                    .purge::<initial_access_tokens::Entity>(rules.initial_access_tokens(), dry_run)
                    .await?,
                revocation_events: self
                    .purge::<revocation_events::Entity>(rules.revocation_events(), dry_run)
                    .await?,
                client_assertions: self
                    .purge::<used_client_assertions::Entity>(
                        Condition::all()
                            .add(used_client_assertions::Column::ExpiresAt.lte(rules.now)),
                        dry_run,
                    )
                    .await?,
                client_documents: self
                    .purge::<client_documents::Entity>(
                        Condition::all().add(client_documents::Column::ExpiresAt.lte(rules.now)),
                        dry_run,
                    )
                    .await?,
                ..Expired::default()
            })
        })
        .await
    }

    async fn idle_dynamic_clients(
        &self,
        idle_since: DateTime<Utc>,
        unused_since: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<String>> {
        let (since, unused_since, now) = (ts(idle_since), ts(unused_since), ts(now));
        let live_refresh = Query::select()
            .expr(Expr::val(1))
            .from(refresh_tokens::Entity)
            .inner_join(
                grants::Entity,
                Expr::col((grants::Entity, grants::Column::Id))
                    .equals((refresh_tokens::Entity, refresh_tokens::Column::GrantId)),
            )
            .and_where(
                Expr::col((grants::Entity, grants::Column::ClientId))
                    .equals((clients::Entity, clients::Column::Id)),
            )
            .and_where(Expr::col((grants::Entity, grants::Column::RevokedAt)).is_null())
            .and_where(
                Expr::col((refresh_tokens::Entity, refresh_tokens::Column::ConsumedAt)).is_null(),
            )
            .and_where(
                Expr::col((refresh_tokens::Entity, refresh_tokens::Column::ExpiresAt)).gt(now),
            )
            .to_owned();
        let pending_code = Query::select()
            .expr(Expr::val(1))
            .from(authorization_codes::Entity)
            .and_where(
                Expr::col((
                    authorization_codes::Entity,
                    authorization_codes::Column::ClientId,
                ))
                .equals((clients::Entity, clients::Column::Id)),
            )
            .and_where(
                Expr::col((
                    authorization_codes::Entity,
                    authorization_codes::Column::ConsumedAt,
                ))
                .is_null(),
            )
            .and_where(
                Expr::col((
                    authorization_codes::Entity,
                    authorization_codes::Column::ExpiresAt,
                ))
                .gt(now),
            )
            .to_owned();
        let last_used = Expr::col((client_usage::Entity, client_usage::Column::LastUsedAt));
        let query = Query::select()
            .column((clients::Entity, clients::Column::Id))
            .from(clients::Entity)
            .left_join(
                client_usage::Entity,
                Expr::col((client_usage::Entity, client_usage::Column::ClientId))
                    .equals((clients::Entity, clients::Column::Id)),
            )
            .and_where(
                Expr::col((clients::Entity, clients::Column::Tier))
                    .eq(ClientTier::Dynamic.as_str()),
            )
            .cond_where(
                Condition::any()
                    .add(
                        Condition::all()
                            .add(Expr::col((clients::Entity, clients::Column::CreatedAt)).lt(since))
                            .add(
                                Condition::any()
                                    .add(last_used.clone().is_null())
                                    .add(last_used.clone().lt(since)),
                            ),
                    )
                    .add(
                        Condition::all()
                            .add(
                                Expr::col((clients::Entity, clients::Column::CreatedAt))
                                    .lt(unused_since),
                            )
                            .add(last_used.is_null()),
                    ),
            )
            .and_where(Expr::exists(live_refresh).not())
            .and_where(Expr::exists(pending_code).not())
            .order_by((clients::Entity, clients::Column::CreatedAt), Order::Asc)
            .limit(limit)
            .to_owned();
        self.db
            .query_all(&query)
            .await
            .map_err(backend)?
            .into_iter()
            .map(|row| row.try_get::<String>("", "id").map_err(backend))
            .collect()
    }

    async fn stats(&self, now: DateTime<Utc>) -> StoreResult<StoreStats> {
        self.guard(async {
            use sea_orm::PaginatorTrait;
            let mut by_tier: std::collections::BTreeMap<String, u64> = Default::default();
            for c in clients::Entity::find()
                .all(&self.db)
                .await
                .map_err(backend)?
            {
                *by_tier.entry(c.tier).or_default() += 1;
            }
            let live_families: std::collections::HashSet<String> = refresh_tokens::Entity::find()
                .filter(refresh_tokens::Column::ConsumedAt.is_null())
                .filter(refresh_tokens::Column::ExpiresAt.gt(ts(now)))
                .all(&self.db)
                .await
                .map_err(backend)?
                .into_iter()
                .map(|r| r.grant_id)
                .collect();
            let revoked: std::collections::HashSet<String> = grants::Entity::find()
                .filter(grants::Column::RevokedAt.is_not_null())
                .all(&self.db)
                .await
                .map_err(backend)?
                .into_iter()
                .map(|g| g.id)
                .collect();
            let usage = client_usage::Entity::find()
                .all(&self.db)
                .await
                .map_err(backend)?;
            Ok(StoreStats {
                clients_by_tier: by_tier.into_iter().collect(),
                users: users::Entity::find()
                    .count(&self.db)
                    .await
                    .map_err(backend)?,
                grants: grants::Entity::find()
                    .count(&self.db)
                    .await
                    .map_err(backend)?,
                revoked_grants: revoked.len() as u64,
                live_refresh_families: live_families.difference(&revoked).count() as u64,
                tokens_issued: usage
                    .iter()
                    .map(|u| u64::try_from(u.tokens_issued).unwrap_or(0))
                    .sum(),
                last_use: usage.iter().map(|u| u.last_used_at).max(),
            })
        })
        .await
    }

    async fn record_usage(&self, batch: &[ClientUsage]) -> StoreResult<()> {
        self.guard(async {
            if batch.is_empty() {
                return Ok(());
            }
            // One transaction per batch; a replica writes at most one batch a minute.
            let txn = self.db.begin().await.map_err(backend)?;
            for u in batch {
                if clients::Entity::find_by_id(u.client_id.clone())
                    .one(&txn)
                    .await
                    .map_err(backend)?
                    .is_none()
                {
                    continue;
                }
                let added = i64::try_from(u.tokens_issued).unwrap_or(i64::MAX);
                let res = client_usage::Entity::update_many()
                    .col_expr(
                        client_usage::Column::TokensIssued,
                        Expr::col(client_usage::Column::TokensIssued).add(added),
                    )
                    .col_expr(
                        client_usage::Column::LastUsedAt,
                        Expr::value(u.last_used_at),
                    )
                    .filter(client_usage::Column::ClientId.eq(u.client_id.clone()))
                    .filter(client_usage::Column::LastUsedAt.lte(u.last_used_at))
                    .exec(&txn)
                    .await
                    .map_err(backend)?;
                if res.rows_affected == 1 {
                    continue;
                }
                let res = client_usage::Entity::update_many()
                    .col_expr(
                        client_usage::Column::TokensIssued,
                        Expr::col(client_usage::Column::TokensIssued).add(added),
                    )
                    .filter(client_usage::Column::ClientId.eq(u.client_id.clone()))
                    .exec(&txn)
                    .await
                    .map_err(backend)?;
                if res.rows_affected == 0 {
                    let row = client_usage::Model {
                        client_id: u.client_id.clone(),
                        tokens_issued: added,
                        last_used_at: u.last_used_at,
                    };
                    client_usage::Entity::insert(row.into_active_model())
                        .exec_without_returning(&txn)
                        .await
                        .map_err(backend)?;
                }
            }
            txn.commit().await.map_err(backend)
        })
        .await
    }
}

/// The client row and its owned resources, inside `txn`.
async fn insert_client_rows(txn: &sea_orm::DatabaseTransaction, c: &Client) -> StoreResult<()> {
    clients::Entity::insert(convert::client_model(c).into_active_model())
        .exec_without_returning(txn)
        .await
        .map_err(insert_err("client"))?;
    for r in &c.resources {
        let row = client_resources::Model {
            client_id: c.id.clone(),
            resource: r.clone(),
        };
        client_resources::Entity::insert(row.into_active_model())
            .exec_without_returning(txn)
            .await
            .map_err(backend)?;
    }
    Ok(())
}

/// Runs a raw statement; for tests and admin tooling that create databases.
pub async fn execute_unprepared(db: &DatabaseConnection, sql: &str) -> Result<(), DbErr> {
    db.execute_unprepared(sql).await.map(|_| ())
}
