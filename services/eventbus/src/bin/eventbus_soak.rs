//! `eventbus-soak --database-url URL --nats-url URL`: a consumer process running
//! the backbone's test projection until Ctrl-C, or SIGKILL: the backbone's crash tests
//! kill it mid-stream; nothing in production runs it.

use std::{process::ExitCode, time::Duration};

use careers_eventbus::{
    ConsumerSpec, Eventbus, catalogue,
    settings::{InboxSettings, NatsSettings, OutboxSettings},
    testing::Projector,
};
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    database_url: String,
    #[arg(long)]
    nats_url: String,
    #[arg(long, default_value = "test_projection")]
    durable: String,
    /// Seconds JetStream waits for an ack before redelivering.
    #[arg(long, default_value_t = 2)]
    ack_wait_seconds: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("eventbus-soak: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let db = sea_orm::Database::connect(args.database_url.as_str()).await?;
    let stop = CancellationToken::new();
    let nats = NatsSettings {
        url: args.nats_url,
        ..NatsSettings::default()
    };
    let inbox = InboxSettings {
        ack_wait: Duration::from_secs(args.ack_wait_seconds),
        ..InboxSettings::default()
    };
    let mut bus = Eventbus::start(
        "soak",
        db,
        catalogue::AMBASSADORS,
        &nats,
        &OutboxSettings::default(),
        &inbox,
        stop.clone(),
    )
    .await?;
    bus.consume(
        ConsumerSpec {
            durable: args.durable,
            stream: catalogue::OCCUPATIONS,
            subjects: vec![],
        },
        Projector::default(),
    );
    tokio::signal::ctrl_c().await?;
    stop.cancel();
    Ok(())
}
