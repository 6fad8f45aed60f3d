//! `ordersync`: the operator's command line (see `ordersync --help`).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = ordersync::cli::Cli::parse();
    ordersync::telemetry::init(cli.global.log_json);
    match ordersync::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
