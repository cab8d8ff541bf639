//! `careersctl`: the operator's command line.
//!
//! - `careersctl dlq list [--durable D]`: dead letters with their reasons.
//! - `careersctl dlq replay DURABLE [--sequence N]`: re-drive them once the handler is fixed.
//! - `careersctl replay DURABLE`: rebuild a projection from the start of its stream.
//! - `careersctl dev`: the whole system on this machine (what `make run` starts).
//! - `careersctl token --role R …`: a development bearer token, alone on the last line.
//! - `careersctl lmi push FILE`: an SSC's CSV or JSON file through the gateway.
//! - `careersctl audit verify [--org O]`: check case notes' audit chains; exit 1 if broken.
//! - `careersctl keys rewrap`: re-wrap case notes' data keys under the newest KEK.
//! - `careersctl keys generate --dir D`: an internal identity key pair for a deployment.
//!
//! careersctl links the service crates, on purpose. Its admin commands (replay, `keys
//! rewrap`, `audit verify`, `dev`) run the services' own code against their own stores: the
//! same projection handlers, key store and audit chain, so a replay rebuilds exactly what
//! the running service would. Separate admin binaries per service would ship that code a
//! second time and need an RPC or a shell between careersctl and each of them. The cost is
//! build time and one binary that knows every store's layout; it reaches a store only with
//! the URL and secrets an operator passes it, exactly as the service would.

mod casenotes;
mod dev;
mod keys;
mod ons_seed;
mod push;

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use async_nats::jetstream;
use careers_eventbus::{
    dlq, provision, replay,
    settings::{InboxSettings, NatsSettings},
};
use careers_platform::{
    identity::Identity,
    settings::{DatabaseSettings, Sources, load_standalone},
    store,
};
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(name = "careersctl", about = "Operate the careers service")]
struct Cli {
    /// A TOML file layered over the embedded defaults.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dead-lettered events.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Rebuild a projection: pause its durable consumer, delete the projection and its
    /// inbox rows in one transaction, and recreate the durable from the start of the stream.
    Replay {
        /// The durable consumer, e.g. `lmi_occupations`.
        durable: String,
    },
    /// Print a development bearer token (ES256, issuer careers-dev, audience careers),
    /// signed with ./data/dev-keys/bearer.pem (made if missing). Needs no running system.
    Token {
        /// A role; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        ssc: Option<String>,
        #[arg(long, default_value = "dev-user")]
        sub: String,
        #[arg(long, default_value = "12h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
    /// Labour market information.
    #[command(subcommand)]
    Lmi(LmiCommand),
    /// Case notes' audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Case notes' key-encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// API keys for read-only open data, in the gateway's key file.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Run the whole system locally: nats-server, every service on SQLite, the seeds.
    Dev {
        /// Where the stores, NATS data and logs live; kept between runs.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// The nats-server binary (2.10.23 or later).
        #[arg(long)]
        nats_server: Option<PathBuf>,
        /// Free ports instead of the contract's, to run beside another stack (tests).
        #[arg(long)]
        free_ports: bool,
    },
}

#[derive(Debug, Subcommand)]
enum LmiCommand {
    /// Send a template file (.csv streamed, or .json) as a submission, with a progress bar;
    /// prints the outcome and the first findings.
    Push {
        file: PathBuf,
        /// The submission key; by default the file's name and a digest of its content,
        /// so sending the same file again changes nothing.
        #[arg(long)]
        key: Option<String>,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway: String,
        /// A bearer token with the ssc_publisher role; or set CAREERS_TOKEN.
        #[arg(long, env = "CAREERS_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// In development, mint a token for this SSC from ./data/dev-keys instead.
        #[arg(long, conflicts_with = "token")]
        ssc: Option<String>,
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the HMAC chain of every organisation (or one) against its head; prints a
    /// line per organisation and exits 1 when any is broken, naming the first bad entry.
    Verify {
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ApikeyCommand {
    /// Issue a key. It is printed once, as the last line of stdout, and stored only as
    /// its SHA-256; the id and name go to stderr.
    Create {
        /// Who holds it.
        #[arg(long)]
        name: String,
        /// Its own rate limit.
        #[arg(long, default_value_t = 600)]
        rate_per_minute: u32,
        #[command(flatten)]
        file: KeyFileArg,
    },
    /// Revoke a key by id; gateways stop accepting it when they next read the file.
    Revoke {
        id: String,
        #[command(flatten)]
        file: KeyFileArg,
    },
    /// The keys, without the keys themselves: id, name, rate, created, revoked.
    List {
        #[command(flatten)]
        file: KeyFileArg,
    },
}

#[derive(Debug, clap::Args)]
struct KeyFileArg {
    /// The gateway's API key file.
    #[arg(
        long = "file",
        env = "CAREERS_GATEWAY__AUTH__API_KEYS_PATH",
        default_value = "data/dev-keys/api-keys.json"
    )]
    path: PathBuf,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Re-wrap every data key not wrapped by the first KEK of casenotes.crypto; afterwards
    /// the older KEKs can be removed from the secret.
    Rewrap,
    /// Make the gateway's internal identity key pair: `<dir>/<name>.pem` (the private key,
    /// for the gateway) and `<dir>/<name>.jwks.json` (for every service). Refuses to
    /// overwrite either.
    Generate {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "internal")]
        name: String,
        /// The key id: the gateway's `identity.key_id`.
        #[arg(long, default_value = "internal-1")]
        kid: String,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List dead letters, oldest first.
    List {
        /// Only those of this durable consumer.
        #[arg(long)]
        durable: Option<String>,
    },
    /// Republish a durable's dead letters on their original subjects and remove them.
    Replay {
        durable: String,
        /// Only the dead letter at this sequence of CAREERS_DEADLETTER.
        #[arg(long)]
        sequence: Option<u64>,
    },
}

#[derive(Debug, Default, Deserialize)]
struct Settings {
    #[serde(default)]
    nats: NatsSettings,
    #[serde(default)]
    inbox: InboxSettings,
    #[serde(default)]
    databases: Databases,
    #[serde(default)]
    casenotes: casenotes::CasenotesSettings,
}

/// Each service's store, for the commands that change a projection.
#[derive(Debug, Default, Deserialize)]
struct Databases {
    lmi: Option<SecretString>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("careersctl: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings: Settings = load_standalone(
        "careersctl",
        Sources::from_process(include_str!("defaults.toml"), cli.config.as_deref()),
    )?;
    if let Command::Token {
        roles,
        org,
        ssc,
        sub,
        ttl,
        data,
    } = &cli.command
    {
        let (pem, _) = keys::ensure(&data.join("dev-keys"), "bearer", "dev-bearer-1")?;
        let identity = Identity {
            sub: sub.clone(),
            roles: roles.clone(),
            org: org.clone(),
            ssc: ssc.clone(),
        };
        println!("{}", keys::sign(&pem, &identity, *ttl)?);
        return Ok(());
    }
    if let Command::Lmi(LmiCommand::Push {
        file,
        key,
        gateway,
        token,
        ssc,
        data,
    }) = &cli.command
    {
        let token = match (token, ssc) {
            (Some(token), _) => token.clone(),
            (None, Some(ssc)) => {
                let (pem, _) = keys::ensure(&data.join("dev-keys"), "bearer", "dev-bearer-1")?;
                keys::dev_token(&pem, "ssc_publisher", Some(ssc))?
            }
            (None, None) => anyhow::bail!(
                "give a bearer token with --token or CAREERS_TOKEN (or, in development, --ssc ID)"
            ),
        };
        return push::push(push::Push {
            file: file.clone(),
            key: key.clone(),
            gateway: gateway.clone(),
            token,
        })
        .await;
    }
    if let Command::Dev {
        data,
        nats_server,
        free_ports,
    } = &cli.command
    {
        let nats_server = nats_server.clone().unwrap_or_else(dev::default_nats_server);
        let ports = if *free_ports {
            dev::Ports::free()?
        } else {
            dev::Ports::contract()
        };
        return dev::run(data, &nats_server, &ports).await;
    }
    match &cli.command {
        Command::Apikey(command) => return apikey(command),
        Command::Audit(AuditCommand::Verify { org }) => {
            if casenotes::verify(&settings.casenotes, org.as_deref()).await? {
                return Ok(());
            }
            anyhow::bail!("an audit chain is broken; see above");
        }
        Command::Keys(KeysCommand::Rewrap) => {
            let rewrapped = casenotes::rewrap(&settings.casenotes).await?;
            println!("{rewrapped} data keys re-wrapped under the newest KEK");
            return Ok(());
        }
        Command::Keys(KeysCommand::Generate { dir, name, kid }) => {
            let (pem, jwks) = keys::generate(dir, name, kid)?;
            println!("{}\n{}", pem.display(), jwks.display());
            return Ok(());
        }
        _ => {}
    }
    let jetstream = provision::connect_now(&settings.nats, "careersctl")
        .await
        .with_context(|| format!("connecting to NATS at {}", settings.nats.url))?;
    match cli.command {
        Command::Dev { .. }
        | Command::Token { .. }
        | Command::Lmi(_)
        | Command::Audit(_)
        | Command::Keys(_)
        | Command::Apikey(_) => {}
        Command::Replay { durable } => replay(&settings, &jetstream, &durable).await?,
        Command::Dlq(command) => match command {
            DlqCommand::List { durable } => {
                let letters = dlq::list(&jetstream, durable.as_deref()).await?;
                println!("sequence\tdurable\tevent_id\tevent_type\tdeliveries\treason");
                for (letter, _) in letters {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        letter.sequence,
                        letter.durable,
                        letter.event_id,
                        letter.event_type,
                        letter.deliveries,
                        letter.reason
                    );
                }
            }
            DlqCommand::Replay { durable, sequence } => {
                let replayed = dlq::replay(&jetstream, &durable, sequence).await?;
                println!("re-drove {replayed} dead letters of {durable}");
            }
        },
    }
    Ok(())
}

/// The projections careersctl can rebuild, by durable name.
async fn replay(
    settings: &Settings,
    jetstream: &jetstream::Context,
    durable: &str,
) -> anyhow::Result<()> {
    let (service, url) = match durable {
        "lmi_occupations" => ("lmi", settings.databases.lmi.as_ref()),
        other => {
            anyhow::bail!("no projection is kept by durable {other:?}; known: lmi_occupations")
        }
    };
    let url = url.with_context(|| {
        format!(
            "set databases.{service} (CAREERS_CAREERSCTL__DATABASES__{}) to the {service} store",
            service.to_ascii_uppercase()
        )
    })?;
    let database = DatabaseSettings::for_url(url.expose_secret());
    let db = store::connect(&database).await?;
    let spec = careers_lmi::events::known_occupations_consumer();
    replay::rebuild(
        &db,
        jetstream,
        &spec,
        &settings.inbox,
        &careers_lmi::events::KnownOccupations::default(),
    )
    .await?;
    println!(
        "{durable}: projection cleared; the {service} service rebuilds it from the start of {}",
        spec.stream.name
    );
    Ok(())
}

fn apikey(command: &ApikeyCommand) -> anyhow::Result<()> {
    use careers_gateway::apikeys::KeyFile;
    match command {
        ApikeyCommand::Create {
            name,
            rate_per_minute,
            file,
        } => {
            let mut keys = KeyFile::read(&file.path)?;
            let (entry, key) = keys.create(name, *rate_per_minute)?;
            keys.write(&file.path)?;
            eprintln!(
                "API key {} for {:?} ({} a minute) added to {}; it is not shown again",
                entry.id,
                entry.name,
                entry.rate_per_minute,
                file.path.display()
            );
            println!("{key}");
        }
        ApikeyCommand::Revoke { id, file } => {
            let mut keys = KeyFile::read(&file.path)?;
            keys.revoke(id)?;
            keys.write(&file.path)?;
            eprintln!("API key {id} revoked in {}", file.path.display());
        }
        ApikeyCommand::List { file } => {
            println!("id\tname\trate_per_minute\tcreated_at\trevoked_at");
            for entry in KeyFile::read(&file.path)?.keys {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    entry.id,
                    entry.name,
                    entry.rate_per_minute,
                    entry.created_at,
                    entry.revoked_at.as_deref().unwrap_or("-")
                );
            }
        }
    }
    Ok(())
}
