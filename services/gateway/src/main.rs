//! The gateway binary: `gateway [--config PATH]`.

use std::{path::PathBuf, process::ExitCode};

use careers_gateway::{App, Settings};
use careers_platform::{
    settings::{Sources, load_standalone},
    shutdown, telemetry,
};
use clap::Parser;

#[derive(Debug, Parser)]
struct Cli {
    /// A TOML file layered over the embedded defaults.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gateway: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let defaults = include_str!("defaults.toml");
    let settings: Settings = load_standalone(
        "gateway",
        Sources::from_process(defaults, cli.config.as_deref()),
    )?;
    let _telemetry = telemetry::init("gateway", &settings.telemetry)?;
    telemetry::serve_metrics(&settings.metrics)?;
    careers_gateway::describe_metrics();
    App::build(settings)
        .await?
        .run_until(shutdown::signal())
        .await?;
    Ok(())
}
