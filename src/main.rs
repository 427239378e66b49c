use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    alta::install_crypto_provider();
    let cli = alta::cli::Cli::parse();
    match alta::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("alta: {err:#}");
            ExitCode::FAILURE
        }
    }
}
