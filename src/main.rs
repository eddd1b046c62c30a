//! `latchkey`: an OAuth 2.1 authorization server for MCP servers.

use clap::{Parser, Subcommand};
use latchkey::config::Mode;
use latchkey::{Settings, admin};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use tokio::net::TcpListener;

/// mimalloc: the gRPC and HTTP/2 hot paths allocate small buffers on every request, and
/// glibc's allocator spent about an eighth of the server's CPU on them (perf, VerifyToken
/// under load).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "latchkey",
    version,
    about = "OAuth 2.1 authorization server for MCP servers"
)]
struct Cli {
    /// A TOML configuration file (LATCHKEY_* variables override it).
    #[arg(long, global = true, env = "LATCHKEY_CONFIG")]
    config: Option<PathBuf>,
    /// Run user, client, resource and keys commands against the gRPC AdminService of a
    /// deployment (e.g. http://latchkey-auth:50051) with LATCHKEY_ADMIN_SECRET, instead of
    /// against the configured database.
    #[arg(long, global = true, env = "LATCHKEY_REMOTE")]
    remote: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: AuthService and gateway together (default), or one of them.
    Serve {
        #[command(subcommand)]
        part: Option<ServePart>,
    },
    /// Apply database migrations.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Manage OAuth clients.
    Client {
        #[command(subcommand)]
        cmd: ClientCmd,
    },
    /// Manage protected resources (RFC 8707 audiences).
    Resource {
        #[command(subcommand)]
        cmd: ResourceCmd,
    },
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Validate the configuration and print every finding.
    CheckConfig,
    /// Clients by tier, grants, live refresh families, tokens issued, last use.
    Stats,
    /// Delete what can no longer be used (maintenance does this every minute).
    Purge {
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// A consistent copy of a SQLite database while it is in use (for PostgreSQL, the
    /// pg_dump command to run).
    Backup {
        /// Where to write the copy (a new file).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ServePart {
    /// Only the gRPC AuthService.
    Auth,
    /// Only the HTTP gateway.
    Gateway {
        /// Where the AuthService listens.
        #[arg(long, env = "LATCHKEY_AUTH_URL")]
        auth_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user; the password is prompted for, or read from stdin.
    Add {
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
    List,
    Disable {
        email: String,
    },
    /// The user's live grants, by client and install (the redirect URI used, a loopback port
    /// left out: one device or app on it).
    Grants {
        email: String,
    },
    /// Revoke the user's grants to a client: one install's (--install), or all of them. The
    /// user's other installs stay signed in.
    Revoke {
        email: String,
        #[arg(long)]
        client: String,
        /// A redirect URI of the install (any loopback port names the same install).
        #[arg(long)]
        install: Option<String>,
    },
}

#[derive(Subcommand)]
enum ClientCmd {
    Add {
        #[arg(long)]
        name: String,
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        /// A public client (no secret).
        #[arg(long)]
        public: bool,
        #[arg(long)]
        scope: Option<String>,
        /// A protected resource this client serves (it may verify and introspect its tokens).
        #[arg(long = "resource")]
        resources: Vec<String>,
        /// A protected resource this client may get tokens for without a user
        /// (`client_credentials`); needed for that grant.
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// Authenticates with private_key_jwt (RFC 7523), its public keys fetched from this
        /// https URL.
        #[arg(long = "jwks-uri", conflicts_with = "jwks")]
        jwks_uri: Option<String>,
        /// Authenticates with private_key_jwt, its public keys in this JWK Set file.
        #[arg(long = "jwks")]
        jwks: Option<std::path::PathBuf>,
    },
    List,
    /// Issue a single-use initial access token (RFC 7591 §3): the registration at /register
    /// that presents it becomes an operator client for the given resources.
    InitialToken {
        /// A protected resource the client may get tokens for without a user.
        #[arg(long = "audience", required = true)]
        audiences: Vec<String>,
        /// The scopes it may get (space-separated); by default what the resources accept.
        #[arg(long)]
        scope: Option<String>,
        /// How long the token can be used, in seconds (at most 30 days).
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: i64,
    },
    Delete {
        client_id: String,
    },
}

#[derive(Subcommand)]
enum ResourceCmd {
    Add {
        url: String,
        /// The scopes this resource accepts (space-separated); all supported ones by default.
        #[arg(long)]
        scopes: Option<String>,
        /// Make it the default audience.
        #[arg(long)]
        default: bool,
        /// A confidential client that serves this resource.
        #[arg(long = "owner")]
        owners: Vec<String>,
        /// SCOPE=IMPLIED: holding SCOPE grants IMPLIED too (space-separated), transitively;
        /// repeat for each scope (e.g. --implies files:write=files:read --implies
        /// admin=files:write). Tokens for this resource carry the implied scopes.
        #[arg(long = "implies", value_name = "SCOPE=IMPLIED")]
        implies: Vec<String>,
    },
    List,
    Delete {
        url: String,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    List,
    Rotate,
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(s.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Repeat password: ")?;
    if first != second {
        anyhow::bail!("the passwords do not match");
    }
    Ok(first)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn fail(problems: Vec<String>) -> anyhow::Error {
    anyhow::anyhow!("invalid configuration:\n  - {}", problems.join("\n  - "))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Before anything reads a certificate: validation builds the listener's TLS.
    latchkey::grpc_transport::install_crypto_provider();
    let mut settings = Settings::load(cli.config.as_deref()).map_err(fail)?;
    // `serve gateway --auth-url` wins over LATCHKEY_AUTH_URL, and is validated like it.
    if let Command::Serve {
        part: Some(ServePart::Gateway {
            auth_url: Some(url),
        }),
    } = &cli.command
    {
        settings.auth_url = url.clone();
    }
    let service = match &cli.command {
        Command::Serve {
            part: Some(ServePart::Gateway { .. }),
        } => "latchkey-gateway",
        Command::Serve {
            part: Some(ServePart::Auth),
        } => "latchkey-auth",
        _ => "latchkey",
    };
    let _telemetry = latchkey::telemetry::init(&settings, service);
    // One validation for every command, for what that command runs: the gateway alone holds
    // no keys and no database; commands sent to a remote deployment use none of the local
    // settings but the admin secret.
    let mode = match &cli.command {
        Command::Serve {
            part: Some(ServePart::Gateway { .. }),
        } => Some(Mode::Gateway),
        Command::Serve { part: None } | Command::CheckConfig => Some(Mode::All),
        Command::Serve {
            part: Some(ServePart::Auth),
        } => Some(Mode::Auth),
        _ if cli.remote.is_some() => None,
        _ => Some(Mode::Database),
    };
    if let Some(mode) = mode {
        settings.validate(mode).map_err(fail)?;
    }
    if let Command::CheckConfig = cli.command {
        println!("configuration OK");
        return Ok(());
    }

    if let Command::Serve { part } = &cli.command {
        let running = match part {
            None => {
                let http = TcpListener::bind(settings.http_addr).await?;
                let grpc = TcpListener::bind(settings.grpc_addr).await?;
                latchkey::start_all(&settings, http, grpc).await?
            }
            Some(ServePart::Auth) => {
                latchkey::start_auth(&settings, TcpListener::bind(settings.grpc_addr).await?)
                    .await?
            }
            Some(ServePart::Gateway { .. }) => {
                latchkey::start_gateway(
                    &settings,
                    &settings.auth_url,
                    TcpListener::bind(settings.http_addr).await?,
                )
                .await?
            }
        };
        tracing::info!(issuer = %settings.issuer, "latchkey is up");
        let stop = running.stopper();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: draining in-flight requests");
            let _ = stop.send(true);
        });
        return running.wait().await;
    }

    if let Command::Backup { file } = &cli.command {
        println!("{}", admin::backup(&settings.database_url, file).await?);
        return Ok(());
    }
    if let Command::Migrate = cli.command {
        latchkey::Application::build(&settings, latchkey::Deps::default()).await?;
        println!("migrations applied");
        return Ok(());
    }
    let mut admin = match &cli.remote {
        Some(url) => {
            let secret = settings.admin_secret.as_ref().ok_or_else(|| {
                anyhow::anyhow!(
                    "--remote needs LATCHKEY_ADMIN_SECRET, the deployment's admin secret"
                )
            })?;
            latchkey::grpc_transport::install_crypto_provider();
            let tls = latchkey::grpc_transport::client_tls(&settings, url).map_err(fail)?;
            admin::remote(url, secrecy::ExposeSecret::expose_secret(secret), tls).await?
        }
        None => admin::in_process(
            latchkey::Application::build(&settings, latchkey::Deps::default())
                .await?
                .core,
        ),
    };
    let out = match cli.command {
        Command::User { cmd } => match cmd {
            UserCmd::Add {
                email,
                password_stdin,
            } => {
                let password = read_password(password_stdin)?;
                admin::user_add(&mut admin, &email, &password).await?
            }
            UserCmd::List => admin::user_list(&mut admin).await?,
            UserCmd::Disable { email } => admin::user_disable(&mut admin, &email).await?,
            UserCmd::Grants { email } => admin::user_grants(&mut admin, &email).await?,
            UserCmd::Revoke {
                email,
                client,
                install,
            } => admin::user_revoke(&mut admin, &email, &client, install).await?,
        },
        Command::Client { cmd } => match cmd {
            ClientCmd::Add {
                name,
                redirect_uris,
                grant_types,
                public,
                scope,
                resources,
                audiences,
                jwks_uri,
                jwks,
            } => {
                let jwks = match jwks {
                    Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                        anyhow::anyhow!("cannot read the JWK Set {}: {e}", path.display())
                    })?),
                    None => None,
                };
                admin::client_add(
                    &mut admin,
                    latchkey_proto::v1::AddClientRequest {
                        name,
                        redirect_uris,
                        grant_types,
                        public,
                        scope,
                        resources,
                        audiences,
                        jwks_uri,
                        jwks,
                    },
                )
                .await?
            }
            ClientCmd::List => admin::client_list(&mut admin).await?,
            ClientCmd::InitialToken {
                audiences,
                scope,
                ttl_secs,
            } => {
                admin::client_initial_token(&mut admin, &audiences, scope.as_deref(), ttl_secs)
                    .await?
            }
            ClientCmd::Delete { client_id } => admin::client_delete(&mut admin, &client_id).await?,
        },
        Command::Resource { cmd } => match cmd {
            ResourceCmd::Add {
                url,
                scopes,
                default,
                owners,
                implies,
            } => {
                admin::resource_add(
                    &mut admin,
                    &url,
                    scopes.as_deref(),
                    default,
                    &owners,
                    &implies,
                )
                .await?
            }
            ResourceCmd::List => admin::resource_list(&mut admin).await?,
            ResourceCmd::Delete { url } => admin::resource_delete(&mut admin, &url).await?,
        },
        Command::Keys { cmd } => match cmd {
            KeysCmd::List => admin::keys_list(&mut admin).await?,
            KeysCmd::Rotate => admin::keys_rotate(&mut admin).await?,
        },
        Command::Stats => admin::stats(&mut admin).await?,
        Command::Purge { dry_run } => admin::purge(&mut admin, dry_run).await?,
        Command::Serve { .. }
        | Command::CheckConfig
        | Command::Migrate
        | Command::Backup { .. } => {
            unreachable!("handled above")
        }
    };
    println!("{}", out.trim_end());
    Ok(())
}
