//! `corral-harness`: the brain. `serve` (the default) works on the wake-ups of one namespace; `run` runs one
//! session locally. See the crate README.

mod cli;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli::main(cli).await {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("corral-harness: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
