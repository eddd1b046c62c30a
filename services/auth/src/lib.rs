//! latchkey-auth: the tonic services over the core, one per kind of caller (the gateway's
//! `AuthService`, the resource servers' `VerificationService`, the operators'
//! `AdminService`), each behind its guard. Proto in, core call, proto out; no
//! rules, no settings, no storage and no startup of its own: the binary composes those
//! (`src/startup.rs`) and hands this crate a built core.

pub mod admin_api;
pub mod gateway_api;
pub mod grpc_metrics;
pub mod guard;
pub mod readiness;
pub mod server;
pub mod service;
pub mod status;
pub mod trace;
pub mod verification_api;

pub use status::OAUTH_DOMAIN;
