use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: glibc keeps the freed 19 MiB argon2 blocks of a
/// burst of logins or registrations resident for good (RSS 40 MiB -> 0.4-1.3 GiB, see
/// `benches/memory.rs`); mimalloc returns freed memory to the system.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
