//! latchkey-auth: the tonic `AuthService` over the core. Proto in, core call, proto out; no
//! rules, no settings, no storage and no startup of its own: the binary composes those
//! (`src/startup.rs`) and hands this crate a built core.

pub mod grpc_metrics;
pub mod readiness;
pub mod server;
pub mod service;
pub mod status;
pub mod trace;

pub use status::OAUTH_DOMAIN;
