//! latchkey-migration: the database schema, one migration per change, identical on
//! PostgreSQL and SQLite.
//!
//! Conventions that keep both backends alike: ids and hashes are text, instants are Unix
//! seconds in `BIGINT`, lists are JSON text. No rules live here, only shape.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_initial;
mod m20261122_000002_revocation_events;
mod m20261122_000003_key_activation;
mod m20261201_000004_client_tiers;
mod m20261201_000005_client_updated_at;
mod m20261201_000006_client_usage;
mod m20261201_000007_bounds;
mod m20261202_000008_client_keys;
mod m20261202_000009_registration_access;
mod m20261202_000010_scope_hierarchy;
mod m20261202_000011_grant_install;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_initial::Migration),
            Box::new(m20261122_000002_revocation_events::Migration),
            Box::new(m20261122_000003_key_activation::Migration),
            Box::new(m20261201_000004_client_tiers::Migration),
            Box::new(m20261201_000005_client_updated_at::Migration),
            Box::new(m20261201_000006_client_usage::Migration),
            Box::new(m20261201_000007_bounds::Migration),
            Box::new(m20261202_000008_client_keys::Migration),
            Box::new(m20261202_000009_registration_access::Migration),
            Box::new(m20261202_000010_scope_hierarchy::Migration),
            Box::new(m20261202_000011_grant_install::Migration),
        ]
    }
}
