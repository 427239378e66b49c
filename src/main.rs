use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: glibc keeps the freed 19 MiB argon2 blocks of a
/// burst of logins or registrations resident for good (RSS 40 MiB -> 0.4-1.3 GiB, see
/// `benches/memory.rs`); mimalloc returns freed memory to the system.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = alta::cli::Cli::parse();
    // The extractor child runs on this one thread, before any runtime starts.
    if let Some(alta::cli::Command::Extract {
        memory_bytes,
        cpu_seconds,
    }) = cli.command
    {
        return ExitCode::from(alta::cli::run_extract(memory_bytes, cpu_seconds));
    }
    alta::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("alta: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(alta::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("alta: {err:#}");
            ExitCode::FAILURE
        }
    }
}
