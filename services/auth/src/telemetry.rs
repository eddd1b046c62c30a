//! Logging setup: pretty logs in development, JSON in production. Credentials never reach a
//! log: handlers record ids (client_id, grant_id, user_id), never tokens, codes or secrets.

use crate::config::{Environment, Settings};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are no-ops.
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let json = match settings.log_format.as_deref() {
        Some("json") => true,
        Some(_) => false,
        None => settings.env == Environment::Production,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
