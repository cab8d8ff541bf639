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
mod progress;
mod push;

use std::{path::PathBuf, process::ExitCode, time::Duration};

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
use clap::{CommandFactory, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

/// Exit codes (README, "careersctl"): 0 done; 1 an error; 2 a push with rows rejected or
/// held for review (unless `--allow-rejected`). clap's own usage errors exit 2 as well.
const EXIT_NEEDS_ATTENTION: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "careersctl",
    about = "Operate the careers service",
    version = careers_platform::VERSION,
    after_help = "Example:\n  careersctl lmi push figures.csv --token \"$CAREERS_TOKEN\" --gateway https://careers.example\n\n\
                  Exit codes: 0 done; 1 an error; 2 a push with rejected or held rows (see lmi push --help)."
)]
struct Cli {
    /// A TOML file layered over the embedded defaults.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print results as one JSON document on stdout, for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dead-lettered events.
    #[command(
        subcommand,
        after_help = "Example:\n  careersctl dlq list --durable lmi_occupations"
    )]
    Dlq(DlqCommand),
    /// Rebuild a projection: pause its durable consumer, delete the projection and its
    /// inbox rows in one transaction, and recreate the durable from the start of the stream.
    #[command(
        after_help = "Example:\n  CAREERS_CAREERSCTL__DATABASES__LMI=postgres://… careersctl replay lmi_occupations"
    )]
    Replay {
        /// The durable consumer, e.g. `lmi_occupations`.
        durable: String,
    },
    /// Print a development bearer token (ES256, issuer careers-dev, audience careers),
    /// signed with ./data/dev-keys/bearer.pem (made if missing). Needs no running system.
    #[command(
        after_help = "Examples:\n  careersctl token --role adviser --org college-1\n  \
                            careersctl token --role ssc_publisher --ssc dev --ttl 1h\n\n\
                            adviser, supervisor and school_contact need --org (a school contact's is \
                            the school URN); ssc_publisher needs --ssc."
    )]
    Token {
        /// A role; repeat for several.
        #[arg(long = "role", required = true, value_parser = clap::builder::PossibleValuesParser::new(careers_gateway::access::ROLES))]
        roles: Vec<String>,
        /// The organisation: an adviser's or supervisor's, or a school contact's school URN.
        #[arg(long)]
        org: Option<String>,
        /// The sector skills council an ssc_publisher publishes for.
        #[arg(long)]
        ssc: Option<String>,
        /// The subject (`sub`): who the token speaks for; an ambassador's is their id.
        #[arg(long, default_value = "dev-user")]
        sub: String,
        /// How long the token is valid, e.g. 30m, 12h.
        #[arg(long, default_value = "12h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Where the development keys live (`<data>/dev-keys`).
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
    /// Labour market information.
    #[command(
        subcommand,
        after_help = "Example:\n  careersctl lmi push figures.csv --ssc dev"
    )]
    Lmi(LmiCommand),
    /// Case notes' audit trail.
    #[command(
        subcommand,
        after_help = "Example:\n  careersctl audit verify --org college-1"
    )]
    Audit(AuditCommand),
    /// Case notes' key-encryption keys, and the gateway's internal identity keys.
    #[command(
        subcommand,
        after_help = "Example:\n  careersctl keys generate --dir ./secrets"
    )]
    Keys(KeysCommand),
    /// API keys for read-only open data, in the gateway's key file.
    #[command(
        subcommand,
        after_help = "Example:\n  careersctl apikey create --name \"Open data partner\""
    )]
    Apikey(ApikeyCommand),
    /// Run the whole system locally: nats-server, every service on SQLite, the seeds.
    #[command(
        after_help = "Example (what `make run` starts, as ./bin/careersctl):\n  careersctl dev --data data"
    )]
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
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  careersctl completions bash > ~/.local/share/bash-completion/completions/careersctl\n  \
                            careersctl completions zsh > \"${fpath[1]}/_careersctl\"\n  \
                            careersctl completions fish > ~/.config/fish/completions/careersctl.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum LmiCommand {
    /// Send a template file (.csv streamed, or .json) as a submission, showing progress in
    /// rows on stderr; prints the outcome and the first findings.
    #[command(after_help = "Examples:\n  \
        careersctl lmi push ashe-2025.csv --gateway https://careers.example   # token in CAREERS_TOKEN\n  \
        careersctl lmi push ashe-2025.csv --dry-run --json > delta.json\n\n\
        Exit codes: 0 every row accepted (suppressed rows count as accepted); 2 some rows \
        rejected or held for review (0 with --allow-rejected); 1 an error (refused, unreachable \
        after the retries, a bad file). A push cut off mid-way is sent again with the same \
        key, and running the same command again resumes the same way.")]
    Push {
        /// The file: .csv (the template's columns, streamed) or .json (`{"submission_key", "rows"}`).
        file: PathBuf,
        /// The submission key; by default the file's name and a digest of its content,
        /// so sending the same file again changes nothing.
        #[arg(long)]
        key: Option<String>,
        /// The gateway's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway: String,
        /// A bearer token with the ssc_publisher role; or set CAREERS_TOKEN.
        #[arg(long, env = "CAREERS_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// In development, mint a token for this SSC from ./data/dev-keys instead.
        #[arg(long, conflicts_with = "token")]
        ssc: Option<String>,
        /// Where the development keys live, for --ssc.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Validate and show the delta (added, changed with old and new values, unchanged);
        /// record nothing.
        #[arg(long)]
        dry_run: bool,
        /// Exit 0 even when rows were rejected or held for review.
        #[arg(long)]
        allow_rejected: bool,
        /// Attempts after the first when the connection drops or the gateway is briefly
        /// unavailable (exponential backoff with jitter, same key).
        #[arg(long, default_value_t = 4)]
        retries: usize,
        /// Without a terminal, how often a progress line is printed.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        progress_every: Duration,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the HMAC chain of every organisation (or one) against its head; prints a
    /// line per organisation and exits 1 when any is broken, naming the first bad entry.
    #[command(after_help = "Example:\n  careersctl audit verify --org college-1 --json")]
    Verify {
        /// Only this organisation's chain.
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ApikeyCommand {
    /// Issue a key. It is printed once, as the last line of stdout, and stored only as
    /// its SHA-256; the id and name go to stderr.
    #[command(
        after_help = "Example:\n  careersctl apikey create --name \"Open data partner\" --rate-per-minute 120"
    )]
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
    #[command(
        after_help = "Example:\n  careersctl apikey revoke 0190a0b0-0000-7000-8000-000000000001"
    )]
    Revoke {
        /// The key's id, as `apikey list` shows it.
        id: String,
        #[command(flatten)]
        file: KeyFileArg,
    },
    /// The keys, without the keys themselves: id, name, rate, created, revoked.
    #[command(after_help = "Example:\n  careersctl apikey list --file /etc/careers/api-keys.json")]
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
    #[command(
        after_help = "Example:\n  CAREERS_CAREERSCTL__CASENOTES__CRYPTO__KEK_PATH=/secrets/kek careersctl keys rewrap"
    )]
    Rewrap,
    /// Make the gateway's internal identity key pair: `<dir>/<name>.pem` (the private key,
    /// for the gateway) and `<dir>/<name>.jwks.json` (for every service). Refuses to
    /// overwrite either.
    #[command(
        after_help = "Example:\n  careersctl keys generate --dir ./secrets --kid prod-internal-2"
    )]
    Generate {
        /// The directory the two files are written to (made if missing).
        #[arg(long)]
        dir: PathBuf,
        /// The files' stem.
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
    #[command(after_help = "Example:\n  careersctl dlq list --durable lmi_occupations --json")]
    List {
        /// Only those of this durable consumer.
        #[arg(long)]
        durable: Option<String>,
    },
    /// Republish a durable's dead letters on their original subjects and remove them.
    #[command(after_help = "Example:\n  careersctl dlq replay lmi_occupations --sequence 7")]
    Replay {
        /// The durable consumer whose dead letters are re-driven, e.g. `lmi_occupations`.
        durable: String,
        /// Only the dead letter at this sequence of CAREERS_DEADLETTER.
        #[arg(long)]
        sequence: Option<u64>,
    },
}

/// Roles whose token must name an organisation (`org`), and those that must name an SSC.
const NEEDS_ORG: [&str; 3] = ["adviser", "supervisor", "school_contact"];
const NEEDS_SSC: [&str; 1] = ["ssc_publisher"];

/// Refuses a token the services would refuse anyway, saying what each role needs.
fn check_token_claims(
    roles: &[String],
    org: Option<&str>,
    ssc: Option<&str>,
) -> anyhow::Result<()> {
    let missing = |needs: &[&str], flag: &str| {
        roles
            .iter()
            .find(|role| needs.contains(&role.as_str()))
            .map(|role| {
                anyhow::anyhow!(
                    "--role {role} needs --{flag}; roles that need --org: {}; roles that need --ssc: {}",
                    NEEDS_ORG.join(", "),
                    NEEDS_SSC.join(", ")
                )
            })
    };
    if org.is_none_or(str::is_empty)
        && let Some(error) = missing(&NEEDS_ORG, "org")
    {
        return Err(error);
    }
    if ssc.is_none_or(str::is_empty)
        && let Some(error) = missing(&NEEDS_SSC, "ssc")
    {
        return Err(error);
    }
    Ok(())
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
        Ok(code) => code,
        Err(error) => {
            eprintln!("careersctl: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints `document` when `--json`, else `text`.
fn print(json: bool, document: serde_json::Value, text: impl FnOnce()) {
    if json {
        println!("{document:#}");
    } else {
        text();
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let json = cli.json;
    let settings: Settings = load_standalone(
        "careersctl",
        Sources::from_process(include_str!("defaults.toml"), cli.config.as_deref()),
    )?;
    match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "careersctl",
                &mut std::io::stdout(),
            );
        }
        Command::Token {
            roles,
            org,
            ssc,
            sub,
            ttl,
            data,
        } => {
            check_token_claims(roles, org.as_deref(), ssc.as_deref())?;
            let (pem, _) = keys::ensure(&data.join("dev-keys"), "bearer", "dev-bearer-1")?;
            let identity = Identity {
                sub: sub.clone(),
                roles: roles.clone(),
                org: org.clone(),
                ssc: ssc.clone(),
            };
            let token = keys::sign(&pem, &identity, *ttl)?;
            print(json, json!({ "token": token }), || println!("{token}"));
        }
        Command::Lmi(LmiCommand::Push {
            file,
            key,
            gateway,
            token,
            ssc,
            data,
            dry_run,
            allow_rejected,
            retries,
            progress_every,
        }) => {
            let token = match (token, ssc) {
                (Some(token), _) => token.clone(),
                (None, Some(ssc)) => {
                    let (pem, _) = keys::ensure(&data.join("dev-keys"), "bearer", "dev-bearer-1")?;
                    keys::dev_token(&pem, "ssc_publisher", None, Some(ssc))?
                }
                (None, None) => anyhow::bail!(
                    "give a bearer token with --token or CAREERS_TOKEN (or, in development, --ssc ID)"
                ),
            };
            let verdict = push::push(push::Push {
                file: file.clone(),
                key: key.clone(),
                gateway: gateway.clone(),
                token,
                dry_run: *dry_run,
                json,
                display: progress::Display::for_stderr(*progress_every),
                retries: *retries,
            })
            .await?;
            return Ok(match verdict {
                push::Verdict::NeedsAttention if !allow_rejected => {
                    eprintln!(
                        "careersctl: some rows were rejected or held for review (exit {EXIT_NEEDS_ATTENTION}; \
                         --allow-rejected exits 0)"
                    );
                    ExitCode::from(EXIT_NEEDS_ATTENTION)
                }
                _ => ExitCode::SUCCESS,
            });
        }
        Command::Dev {
            data,
            nats_server,
            free_ports,
        } => {
            let nats_server = nats_server.clone().unwrap_or_else(dev::default_nats_server);
            let ports = if *free_ports {
                dev::Ports::free()?
            } else {
                dev::Ports::contract()
            };
            dev::run(data, &nats_server, &ports).await?;
        }
        Command::Apikey(command) => {
            apikey(command, json)?;
        }
        Command::Audit(AuditCommand::Verify { org }) => {
            let checks = casenotes::verify(&settings.casenotes, org.as_deref()).await?;
            print(json, json!(checks), || {
                for check in &checks {
                    match (&check.entries, &check.broken) {
                        (_, Some(broken)) => println!("{}\tBROKEN\t{broken}", check.org),
                        (entries, None) => {
                            println!("{}\tok\t{} entries", check.org, entries.unwrap_or_default())
                        }
                    }
                }
            });
            if checks.iter().any(|check| check.broken.is_some()) {
                anyhow::bail!("an audit chain is broken; see above");
            }
        }
        Command::Keys(KeysCommand::Rewrap) => {
            let rewrapped = casenotes::rewrap(&settings.casenotes).await?;
            print(json, json!({ "rewrapped": rewrapped }), || {
                println!("{rewrapped} data keys re-wrapped under the newest KEK")
            });
        }
        Command::Keys(KeysCommand::Generate { dir, name, kid }) => {
            let (pem, jwks) = keys::generate(dir, name, kid)?;
            print(
                json,
                json!({ "private_key": pem, "jwks": jwks, "kid": kid }),
                || println!("{}\n{}", pem.display(), jwks.display()),
            );
        }
        Command::Replay { durable } => {
            let jetstream = connect_nats(&settings).await?;
            replay(&settings, &jetstream, durable, json).await?;
        }
        Command::Dlq(command) => {
            let jetstream = connect_nats(&settings).await?;
            dead_letters(&jetstream, command, json).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn connect_nats(settings: &Settings) -> anyhow::Result<jetstream::Context> {
    provision::connect_now(&settings.nats, "careersctl")
        .await
        .with_context(|| format!("connecting to NATS at {}", settings.nats.url))
}

async fn dead_letters(
    jetstream: &jetstream::Context,
    command: &DlqCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        DlqCommand::List { durable } => {
            let letters = dlq::list(jetstream, durable.as_deref()).await?;
            let document: Vec<_> = letters
                .iter()
                .map(|(letter, _)| {
                    json!({
                        "sequence": letter.sequence, "durable": letter.durable,
                        "event_id": letter.event_id, "event_type": letter.event_type,
                        "subject": letter.subject, "deliveries": letter.deliveries,
                        "reason": letter.reason,
                    })
                })
                .collect();
            print(json, json!(document), || {
                println!("sequence\tdurable\tevent_id\tevent_type\tdeliveries\treason");
                for (letter, _) in &letters {
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
            });
        }
        DlqCommand::Replay { durable, sequence } => {
            let replayed = dlq::replay(jetstream, durable, *sequence).await?;
            print(
                json,
                json!({ "durable": durable, "replayed": replayed }),
                || println!("re-drove {replayed} dead letters of {durable}"),
            );
        }
    }
    Ok(())
}

/// The projections careersctl can rebuild, by durable name.
async fn replay(
    settings: &Settings,
    jetstream: &jetstream::Context,
    durable: &str,
    json: bool,
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
    print(
        json,
        json!({ "durable": durable, "cleared": true, "stream": spec.stream.name }),
        || {
            println!(
                "{durable}: projection cleared; the {service} service rebuilds it from the start of {}",
                spec.stream.name
            )
        },
    );
    Ok(())
}

fn apikey(command: &ApikeyCommand, json: bool) -> anyhow::Result<()> {
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
            print(
                json,
                json!({ "id": entry.id, "name": entry.name, "rate_per_minute": entry.rate_per_minute, "key": key }),
                || println!("{key}"),
            );
        }
        ApikeyCommand::Revoke { id, file } => {
            let mut keys = KeyFile::read(&file.path)?;
            keys.revoke(id)?;
            keys.write(&file.path)?;
            eprintln!("API key {id} revoked in {}", file.path.display());
            print(json, json!({ "id": id, "revoked": true }), || {});
        }
        ApikeyCommand::List { file } => {
            let keys = KeyFile::read(&file.path)?.keys;
            let document: Vec<_> = keys
                .iter()
                .map(|entry| {
                    json!({
                        "id": entry.id, "name": entry.name,
                        "rate_per_minute": entry.rate_per_minute,
                        "created_at": entry.created_at, "revoked_at": entry.revoked_at,
                    })
                })
                .collect();
            print(json, json!(document), || {
                println!("id\tname\trate_per_minute\tcreated_at\trevoked_at");
                for entry in &keys {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        entry.id,
                        entry.name,
                        entry.rate_per_minute,
                        entry.created_at,
                        entry.revoked_at.as_deref().unwrap_or("-")
                    );
                }
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command, at any depth, with its path from the root.
    fn commands() -> Vec<(String, clap::Command)> {
        fn walk(path: String, command: &clap::Command, into: &mut Vec<(String, clap::Command)>) {
            into.push((path.clone(), command.clone()));
            for sub in command.get_subcommands() {
                walk(format!("{path} {}", sub.get_name()), sub, into);
            }
        }
        let mut all = Vec::new();
        walk("careersctl".into(), &Cli::command(), &mut all);
        all
    }

    #[test]
    fn every_command_shows_an_example_and_every_argument_says_what_it_is() {
        Cli::command().debug_assert();
        let all = commands();
        assert!(
            all.len() >= 19,
            "the walk found only {} commands",
            all.len()
        );
        for (path, command) in &all {
            let after = command
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                after.contains("Example") && after.contains("careersctl"),
                "{path}: its help shows no example"
            );
            assert!(
                command.get_about().is_some() || path == "careersctl",
                "{path}: no about"
            );
            for argument in command.get_arguments() {
                let id = argument.get_id().as_str();
                if ["help", "version"].contains(&id) {
                    continue;
                }
                assert!(
                    argument.get_help().is_some(),
                    "{path}: argument {id} has no help text"
                );
            }
        }
    }

    #[test]
    fn a_token_names_what_its_roles_need() {
        let roles = |names: &[&str]| {
            names
                .iter()
                .map(|name| (*name).to_owned())
                .collect::<Vec<_>>()
        };
        let refused = check_token_claims(&roles(&["adviser"]), None, None)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(
            refused.starts_with("--role adviser needs --org")
                && refused.contains("adviser, supervisor, school_contact")
                && refused.contains("--ssc: ssc_publisher"),
            "{refused}"
        );
        assert!(check_token_claims(&roles(&["ssc_publisher"]), Some("x"), None).is_err());
        assert!(check_token_claims(&roles(&["school_contact"]), Some(""), None).is_err());
        assert!(
            check_token_claims(
                &roles(&["adviser", "ssc_publisher"]),
                Some("c"),
                Some("dev")
            )
            .is_ok()
        );
        assert!(check_token_claims(&roles(&["operator", "qa_reviewer"]), None, None).is_ok());
    }
}
