//! `corral-sandbox`: the sandbox daemon. See the crate README for the protocol.

use clap::Parser;
use corral_sandbox::config::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    if let Err(e) = config.log.init() {
        eprintln!("corral-sandbox: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
    match corral_sandbox::server::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("corral-sandbox: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
