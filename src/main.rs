use std::process::ExitCode;

use clap::Parser;

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
