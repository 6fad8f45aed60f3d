//! `ordersync-dev`: what only developers run. The provider simulator, the
//! end-to-end demo (`just demo`), the benchmarks (`just bench`) and the
//! fault soak (`just chaos`). None of it is in the production binaries or
//! the Docker image.

mod bench;
mod chaos;
mod database;
mod demo;

use clap::{Parser, Subcommand};
use ordersync::cli::GlobalArgs;

/// ordersync's developer tools: simulator, demo, benchmarks.
#[derive(Debug, Parser)]
#[command(name = "ordersync-dev", version, about)]
struct DevCli {
    /// Shared settings (the database server, Redis).
    #[command(flatten)]
    global: GlobalArgs,
    /// What to run.
    #[command(subcommand)]
    command: DevCommand,
}

/// The developer commands.
#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Run the simulated courier, shop, ERP and SMS services.
    Simulate(demo::SimulateArgs),
    /// The end-to-end demo (`just demo`).
    Demo(demo::DemoArgs),
    /// Benchmarks (`just bench`).
    Bench(bench::BenchArgs),
    /// Fault scenarios soaked against private Redis and Postgres (`just chaos`).
    Chaos(chaos::ChaosArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = DevCli::parse();
    ordersync::telemetry::init(cli.global.log_json);
    let result = match cli.command {
        DevCommand::Simulate(args) => demo::simulate(args).await,
        DevCommand::Demo(args) => demo::run(&cli.global, args).await,
        DevCommand::Bench(args) => bench::run(&cli.global, args).await,
        DevCommand::Chaos(args) => chaos::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
