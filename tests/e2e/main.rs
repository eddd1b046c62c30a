//! End-to-end suites: the whole system in-process on random ports, driven over real HTTP (with
//! a cookie jar through the login and consent forms) and the generated gRPC client. They run
//! on SQLite, and on PostgreSQL when `LATCHKEY_TEST_DATABASE_URL` is set, one database per test.

mod common;

mod abuse;
mod authorize;
mod bounds;
mod cimd;
mod cli;
mod discovery;
mod edges;
mod errors;
mod grpc;
mod grpc_tls;
mod installs;
mod keys;
mod malformed;
mod mcp;
mod migration;
mod observability;
mod outage;
mod private_key_jwt;
mod property;
mod races;
mod redis_outage;
mod registration;
mod registration_management;
mod revocation;
mod scope_hierarchy;
mod shared_state;
mod tiers;
mod token;
mod verification;
