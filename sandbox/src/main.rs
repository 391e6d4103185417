//! `corral-sandbox`: the sandbox daemon (see the crate README for the protocol), and its `install-packages`
//! subcommand that installs an Environment's packages when a sandbox pod starts.

use clap::Parser;
use corral_sandbox::config::Config;

fn main() -> std::process::ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(corral_sandbox_protocol::pod::INSTALL_PACKAGES_COMMAND) {
        return corral_sandbox::packages::cli::main(argv);
    }
    let config = Config::parse();
    if let Err(e) = config.log.init() {
        eprintln!("corral-sandbox: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("corral-sandbox: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(corral_sandbox::server::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("corral-sandbox: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
