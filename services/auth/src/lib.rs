//! latchkey-auth: the tonic `AuthService` over the core, with its configuration, its
//! startup and its telemetry. Proto in, core call, proto out; no rules of its own.

pub mod config;
pub mod grpc_metrics;
pub mod probes;
pub mod server;
pub mod service;
pub mod status;
pub mod telemetry;

pub use config::Settings;
pub use status::OAUTH_DOMAIN;
