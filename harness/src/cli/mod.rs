//! Command-line interface.

mod run;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The Corral harness.
#[derive(Parser, Debug)]
#[command(
    name = "corral-harness",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: serve::ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Work on the wake-ups of one namespace (the default).
    Serve(Box<serve::ServeArgs>),
    /// Run one session on this machine: no cluster, a local Redis and a local sandbox.
    Run(run::RunArgs),
}

/// Runs the command.
pub async fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Run(args)) => run::run(args).await,
        Some(Command::Serve(args)) => serve::serve(*args).await.map(|()| ExitCode::SUCCESS),
        None => serve::serve(cli.serve).await.map(|()| ExitCode::SUCCESS),
    }
}
