//! The command-line interface: `serve`, `migrate`, `token issue`, and administrative commands
//! for organizations, people, members and API keys. Administrative commands print JSON.

use crate::node::{self, Node};
use crate::server;
use crate::settings::{self, FlagOverrides};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dartwing_core::Principal;
use dartwing_core::tenancy::{MemberRole, OrgType};
use dartwing_tenancy::list::ListParams;
use dartwing_tenancy::{Invitee, NewMember, NewOrganization, NewPerson, TenancyStore};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Dartwing Core runtime: realtime gateway, token vault, offline sync, observability and
/// background jobs for multi-tenant Dartwing apps, in one binary.
#[derive(Debug, Parser)]
#[command(name = "dartwing", version)]
pub struct Cli {
    /// TOML configuration file [env: DARTWING_CONFIG; default: ./dartwing.toml if present].
    #[arg(long, global = true, env = "DARTWING_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    flags: GlobalFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct GlobalFlags {
    /// Listen address host:port [env: DARTWING_LISTEN; default 127.0.0.1:8000].
    #[arg(long, global = true)]
    listen: Option<String>,
    /// sqlite:… or postgres://… [env: DARTWING_DATABASE_URL; default: SQLite in the data dir].
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// redis://… enables cluster mode [env: DARTWING_REDIS_URL].
    #[arg(long, global = true)]
    redis_url: Option<String>,
    /// Data directory [env: DARTWING_DATA_DIR; default ./dartwing-data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Node id in metrics and logs [env: DARTWING_NODE_ID; default hostname:port].
    #[arg(long, global = true)]
    node_id: Option<String>,
    /// Roles to run: api,realtime,worker,scheduler [env: DARTWING_ROLES; default all].
    #[arg(long, global = true)]
    roles: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (all configured roles).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Development tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Integration token vault keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// People.
    #[command(subcommand)]
    Person(PersonCommand),
    /// Organization memberships.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Service API keys (`Authorization: token <key>:<secret>`).
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Background jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// The dead-letter queue of failed jobs.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Enqueue a job.
    Enqueue {
        /// Job type, e.g. core.sleep.
        #[arg(long)]
        method: String,
        /// Organization (omit for a system job).
        #[arg(long)]
        org: Option<String>,
        /// Arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
    },
    /// Show a job's status.
    Status {
        /// Job id.
        job_id: String,
    },
    /// List recent jobs.
    List {
        /// Only this organization's jobs.
        #[arg(long)]
        org: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Cancel a pending or running job.
    Cancel {
        /// Job id.
        job_id: String,
    },
    /// Registered job types.
    Types,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List dead letters.
    List {
        /// Only this organization's dead letters.
        #[arg(long)]
        org: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Re-enqueue a dead letter's job.
    Retry {
        /// Dead letter name (DLQ-…).
        name: String,
        /// Why.
        #[arg(long)]
        notes: Option<String>,
    },
    /// Mark a dead letter Resolved.
    Resolve {
        /// Dead letter name.
        name: String,
        /// What was done.
        #[arg(long)]
        notes: Option<String>,
    },
    /// Mark a dead letter Ignored.
    Ignore {
        /// Dead letter name.
        name: String,
        /// Why.
        #[arg(long)]
        notes: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print a new random integration key (base64 of 32 bytes) and its id.
    Generate,
    /// Re-encrypt every stored integration token under the current key (`integrations.key`),
    /// with a progress bar. Older keys must still be listed in `integrations.previous_keys`.
    /// Safe to interrupt: running it again continues with the rows not yet rotated.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print an HS256 JWT signed with the configured secret.
    Issue {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// Grant the platform-administrator role.
        #[arg(long)]
        admin: bool,
        /// Lifetime in seconds [default: auth.dev_token_ttl_secs].
        #[arg(long)]
        ttl_secs: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Create an organization, optionally with an Owner.
    Create {
        /// Display name.
        #[arg(long)]
        org_name: String,
        /// Family, Company, Association or Nonprofit.
        #[arg(long, value_parser = parse_text::<OrgType>)]
        org_type: OrgType,
        /// Explicit name (default ORG-YYYY-NNNNN).
        #[arg(long)]
        name: Option<String>,
        /// Email of the Owner to add (created if needed).
        #[arg(long)]
        owner: Option<String>,
    },
    /// List organizations.
    List,
}

#[derive(Debug, Subcommand)]
enum PersonCommand {
    /// Create a person.
    Create {
        /// Email (unique).
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        full_name: Option<String>,
    },
    /// List people.
    List,
}

#[derive(Debug, Subcommand)]
enum MemberCommand {
    /// Add a person (by email, created if needed) to an organization.
    Add {
        /// Organization name.
        #[arg(long)]
        org: String,
        /// The person's email.
        #[arg(long)]
        email: String,
        /// Owner, Admin, Member or Guest.
        #[arg(long, value_parser = parse_text::<MemberRole>)]
        role: MemberRole,
    },
    /// Remove a membership by its name.
    Remove {
        /// Org Member name (MEM-…).
        name: String,
    },
    /// List memberships.
    List,
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Create a key; prints the secret once.
    Create {
        /// Scope the key to one organization (default: system-wide).
        #[arg(long)]
        org: Option<String>,
        /// What the key is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List keys (without secrets).
    List,
    /// Revoke a key.
    Revoke {
        /// The key.
        api_key: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print it with secrets hidden.
    Check,
}

/// `dartwing keys rotate`: re-encrypts every row under the current key with a progress bar.
async fn rotate_keys(config: dartwing_core::config::Config) -> anyhow::Result<()> {
    use dartwing_integrations::rotate;
    let keys = dartwing_integrations::KeyRing::from_config(&config).map_err(|e| anyhow::anyhow!(e.to_string()))?;
    let store = dartwing_integrations::store::VaultStore::new(database(&config).await?)?;
    let total = rotate::pending(&store, &keys).await?;
    let bar = indicatif::ProgressBar::new(u64::try_from(total).unwrap_or(0));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} rows ({eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("re-encrypting under key {}", keys.current_id()));
    let report = rotate::rotate(&store, &keys, "cli", |done| bar.set_position(done)).await?;
    bar.finish();
    print_json(&report)?;
    if !report.unreadable.is_empty() {
        anyhow::bail!(
            "{} row(s) are encrypted with a key missing from the ring (left unchanged); add the old key to integrations.previous_keys and run again",
            report.unreadable.len()
        );
    }
    Ok(())
}

fn parse_text<T: std::str::FromStr<Err = String>>(text: &str) -> Result<T, String> {
    text.parse()
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    emit(&serde_json::to_string_pretty(value)?)
}

/// Writes a line to stdout; a closed pipe (`dartwing … | head`) ends output quietly.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

impl Cli {
    /// Whether this invocation runs the server (which logs JSON to stdout).
    pub fn is_serve(&self) -> bool {
        matches!(self.command, Command::Serve)
    }

    /// Loads the configuration from file, environment and flags; the error lists every problem
    /// found, one per line.
    pub fn load_config(&self) -> Result<dartwing_core::config::Config, settings::LoadError> {
        let flags = FlagOverrides {
            listen: self.flags.listen.clone(),
            database_url: self.flags.database_url.clone(),
            redis_url: self.flags.redis_url.clone(),
            data_dir: self.flags.data_dir.clone(),
            node_id: self.flags.node_id.clone(),
            roles: self.flags.roles.clone(),
        };
        settings::load(self.config.as_deref(), &flags)
    }

    /// Runs the command.
    pub async fn run(self, config: dartwing_core::config::Config) -> anyhow::Result<()> {
        let operator = Principal::system("cli");
        match self.command {
            Command::Serve => serve(config).await,
            Command::Migrate => {
                database(&config).await?;
                emit("migrations applied")?;
                Ok(())
            }
            // Secret settings serialize as `<set>` (URLs with the password hidden).
            Command::Config(ConfigCommand::Check) => print_json(&config),
            Command::Keys(KeysCommand::Generate) => {
                let key = dartwing_integrations::keyring::generate_key();
                let id = dartwing_integrations::keyring::key_id(&key)?;
                emit(&key)?;
                eprintln!(
                    "key id {id}: set it as DARTWING_INTEGRATION_KEY (integrations.key), keep the old key in integrations.previous_keys, then run `dartwing keys rotate`"
                );
                Ok(())
            }
            Command::Keys(KeysCommand::Rotate) => rotate_keys(config).await,
            Command::Token(TokenCommand::Issue { email, admin, ttl_secs }) => {
                let ttl = Duration::from_secs(ttl_secs.unwrap_or(config.auth.dev_token_ttl_secs));
                let secret = crate::secrets::jwt_secret(&config).map_err(anyhow::Error::msg)?;
                let verifier = dartwing_http::JwtVerifier::new(
                    secret.as_ref().map(dartwing_core::config::Secret::expose),
                    &config.auth,
                );
                emit(&verifier.issue_dev_token(&email, admin, ttl)?)?;
                Ok(())
            }
            Command::Org(command) => {
                let tenancy = tenancy(&config).await?;
                match command {
                    OrgCommand::Create {
                        org_name,
                        org_type,
                        name,
                        owner,
                    } => {
                        let org = tenancy
                            .create_organization(
                                &operator,
                                NewOrganization {
                                    name,
                                    org_name,
                                    org_type,
                                    status: None,
                                },
                            )
                            .await?;
                        if let Some(email) = owner {
                            add_member(&tenancy, &operator, &org.name, &email, MemberRole::Owner).await?;
                        }
                        print_json(&org)
                    }
                    OrgCommand::List => print_json(&tenancy.list_organizations(&operator, &all_fields()).await?),
                }
            }
            Command::Person(command) => {
                let tenancy = tenancy(&config).await?;
                match command {
                    PersonCommand::Create { email, full_name } => print_json(
                        &tenancy
                            .create_person(
                                &operator,
                                NewPerson {
                                    name: None,
                                    primary_email: email,
                                    full_name,
                                    status: None,
                                },
                            )
                            .await?,
                    ),
                    PersonCommand::List => print_json(&tenancy.list_people(&operator, &all_fields()).await?),
                }
            }
            Command::Member(command) => {
                let tenancy = tenancy(&config).await?;
                match command {
                    MemberCommand::Add { org, email, role } => {
                        print_json(&add_member(&tenancy, &operator, &org, &email, role).await?)
                    }
                    MemberCommand::Remove { name } => {
                        tenancy.remove_member(&operator, &name).await?;
                        emit(&format!("removed {name}"))?;
                        Ok(())
                    }
                    MemberCommand::List => print_json(&tenancy.list_members(&operator, &all_fields()).await?),
                }
            }
            // The job engine with every capability's job types (a whole node, not served).
            Command::Jobs(command) => {
                let node = Node::build(config).await?;
                let jobs = node.jobs();
                match command {
                    JobsCommand::Enqueue { method, org, args } => {
                        let args: serde_json::Value =
                            serde_json::from_str(&args).context("--args must be a JSON object")?;
                        let job = dartwing_jobs::model::NewJob::new(method, org.as_deref(), args);
                        print_json(&jobs.enqueue(&operator, job).await?)
                    }
                    JobsCommand::Status { job_id } => print_json(&jobs.status(&operator, &job_id).await?),
                    JobsCommand::List { org, limit } => {
                        print_json(&jobs.list(&operator, org.as_deref(), None, limit.clamp(1, 500)).await?)
                    }
                    JobsCommand::Cancel { job_id } => print_json(
                        &serde_json::json!({ "job_id": job_id, "status": jobs.cancel(&operator, &job_id).await? }),
                    ),
                    JobsCommand::Types => print_json(&jobs.methods()),
                }
            }
            Command::Dlq(command) => {
                let node = Node::build(config).await?;
                let jobs = node.jobs();
                use dartwing_jobs::model::DeadLetterStatus;
                match command {
                    DlqCommand::List { org, limit } => print_json(
                        &jobs
                            .dead_letters(&operator, org.as_deref(), limit.clamp(1, 500))
                            .await?,
                    ),
                    DlqCommand::Retry { name, notes } => {
                        print_json(&jobs.retry_dead_letter(&operator, &name, notes.as_deref()).await?)
                    }
                    DlqCommand::Resolve { name, notes } => print_json(
                        &jobs
                            .settle_dead_letter(&operator, &name, DeadLetterStatus::Resolved, notes.as_deref())
                            .await?,
                    ),
                    DlqCommand::Ignore { name, notes } => print_json(
                        &jobs
                            .settle_dead_letter(&operator, &name, DeadLetterStatus::Ignored, notes.as_deref())
                            .await?,
                    ),
                }
            }
            Command::Apikey(command) => {
                let tenancy = tenancy(&config).await?;
                match command {
                    ApiKeyCommand::Create { org, description } => {
                        print_json(&tenancy.create_api_key(&operator, org.as_deref(), &description).await?)
                    }
                    ApiKeyCommand::List => print_json(&tenancy.list_api_keys(&operator).await?),
                    ApiKeyCommand::Revoke { api_key } => {
                        tenancy.revoke_api_key(&operator, &api_key).await?;
                        emit(&format!("revoked {api_key}"))?;
                        Ok(())
                    }
                }
            }
        }
    }
}

fn all_fields() -> ListParams {
    ListParams {
        fields: Some(r#"["*"]"#.into()),
        limit_page_length: Some("0".into()),
        ..Default::default()
    }
}

/// The configured database, migrated: all that `migrate` and the tenancy and key commands need.
async fn database(config: &dartwing_core::config::Config) -> anyhow::Result<dartwing_db::Db> {
    let metrics = std::sync::Arc::new(
        dartwing_observe::Metrics::new(false, config.observability.max_org_label_values)
            .map_err(|e| anyhow::anyhow!(e.to_string()))?,
    );
    let db = node::connect(config, &metrics).await?;
    db.migrate(&node::MIGRATIONS).await?;
    Ok(db)
}

/// The tenancy store on the configured database. In a cluster its changes reach the running
/// nodes, whose caches drop what they concern.
async fn tenancy(config: &dartwing_core::config::Config) -> anyhow::Result<TenancyStore> {
    let db = database(config).await?;
    let access = dartwing_core::access::AccessChanges::new();
    let origin = format!("cli-{}", dartwing_core::ids::random_hex(8));
    if let Some(carrier) = crate::cluster::Carrier::install(config, &origin, &db, &access)? {
        // Ends with the process, after the command's changes left.
        drop(carrier.spawn(tokio_util::sync::CancellationToken::new()));
    }
    Ok(TenancyStore::new(db)
        .with_config(config.tenancy.clone())
        .with_access_changes(access))
}

async fn add_member(
    tenancy: &TenancyStore,
    operator: &Principal,
    org: &str,
    email: &str,
    role: MemberRole,
) -> anyhow::Result<dartwing_core::tenancy::OrgMember> {
    // An operator adds directly, creating the Person when none has the email yet.
    let new = NewMember {
        invitee: Invitee::Email(email.to_string()),
        organization: org.to_string(),
        role,
        status: None,
    };
    Ok(tenancy.add_member(operator, new).await?)
}

async fn serve(config: dartwing_core::config::Config) -> anyhow::Result<()> {
    let node = Node::build(config).await.context("startup failed")?;
    let running = server::start(&node).await?;
    let url = format!("http://{}", running.addr);
    tracing::info!(
        url = %url,
        roles = %node.config().roles,
        database = node.db().backend().as_str(),
        health = %format!("{url}/health"),
        dev_token = "dartwing token issue --email you@example.com",
        "dartwing listening on {url}; get a development token with `dartwing token issue --email you@example.com`"
    );
    shutdown_signal().await;
    tracing::info!("shutdown requested; finishing in-flight requests");
    running.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = terminate.recv() => {},
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
