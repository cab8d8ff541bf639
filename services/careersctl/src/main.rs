//! `careersctl`: the operator's command line.
//!
//! - `careersctl dlq list [--durable D]`: dead letters with their reasons.
//! - `careersctl dlq replay DURABLE [--sequence N]`: re-drive them once the handler is fixed.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use careers_eventbus::{dlq, provision, settings::NatsSettings};
use careers_platform::settings::{Sources, load_standalone};
use clap::{Parser, Subcommand};
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
    match cli.command {
        Command::Dlq(command) => {
            let jetstream = provision::connect_now(&settings.nats, "careersctl")
                .await
                .with_context(|| format!("connecting to NATS at {}", settings.nats.url))?;
            match command {
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
            }
        }
    }
    Ok(())
}
