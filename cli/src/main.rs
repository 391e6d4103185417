//! `corral`: the command line for Corral's HTTP API. Run `corral --help`.

mod approve;
mod args;
mod body;
mod chat;
mod client;
mod config;
mod error;
mod events;
mod files;
mod input;
mod output;
mod render;
mod resources;
mod skills;
mod slash;
mod stream;
mod usage;

use clap::{CommandFactory, Parser};

use crate::{
    args::{Cli, Command, ConfigCommand},
    client::Client,
    config::{FileConfig, Key},
    error::{CliError, Result},
};

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => fail(&CliError::Other(format!("starting the runtime: {e}"))),
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        fail(&e);
    }
}

fn fail(e: &CliError) -> ! {
    if !matches!(e, CliError::Interrupted | CliError::Closed) {
        eprintln!("{} {e}", console::style("error:").red().bold());
        if let Some(hint) = e.hint() {
            eprintln!("{} {hint}", console::style("hint:").yellow());
        }
    }
    std::process::exit(e.exit_code())
}

async fn run(cli: Cli) -> Result<()> {
    let path = config::path(cli.config.as_deref())?;
    let format = cli.output;
    let connect = || -> Result<Client> {
        let file = FileConfig::load(&path)?;
        let resolved = config::resolve(cli.url.as_deref(), cli.api_key.as_deref(), &file, &path)?;
        Client::new(&resolved)
    };
    match cli.command {
        Command::Config(cmd) => config_command(&path, cmd),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "corral", &mut script);
            output::line(String::from_utf8_lossy(&script).trim_end())
        }
        Command::Agents(cmd) => resources::agents(&connect()?, format, cmd).await,
        Command::Environments(cmd) => resources::environments(&connect()?, format, cmd).await,
        Command::Sessions(cmd) => resources::sessions(&connect()?, format, cmd).await,
        Command::Send(args) => chat::send(&connect()?, format, args).await,
        Command::Interrupt(a) => chat::interrupt(&connect()?, format, &a.session).await,
        Command::Approve(args) => approve::run(&connect()?, format, args).await,
        Command::Chat(args) => {
            let defaults = FileConfig::load(&path)?;
            chat::chat(&connect()?, format, args, &defaults).await
        }
        Command::Events(args) => events::run(&connect()?, format, args).await,
        Command::Run(args) => {
            let defaults = FileConfig::load(&path)?;
            chat::run(&connect()?, format, args, &defaults).await
        }
        Command::Files(cmd) => files::run(&connect()?, format, cmd).await,
        Command::Skills(cmd) => skills::run(&connect()?, format, cmd).await,
    }
}

fn mask(key: &str) -> String {
    let shown: String = key.chars().take(12).collect();
    if key.chars().count() > 12 {
        format!("{shown}…")
    } else {
        "…".into()
    }
}

fn config_command(path: &std::path::Path, cmd: ConfigCommand) -> Result<()> {
    match cmd {
        ConfigCommand::Path => {
            crate::out!("{}", path.display());
            Ok(())
        }
        ConfigCommand::Get { key: Some(key) } => {
            let file = FileConfig::load(path)?;
            let value = file.get(key).ok_or_else(|| {
                CliError::Config(format!("{} is not set in {}", key.name(), path.display()))
            })?;
            crate::out!("{value}");
            Ok(())
        }
        ConfigCommand::Get { key: None } => {
            let file = FileConfig::load(path)?;
            crate::out!("# {}", path.display());
            crate::out!("url = {}", file.url.as_deref().unwrap_or("(not set)"));
            crate::out!(
                "api-key = {}",
                file.api_key.as_deref().map_or_else(|| "(not set)".into(), mask)
            );
            crate::out!("agent = {}", file.agent.as_deref().unwrap_or("(not set)"));
            crate::out!(
                "environment = {}",
                file.environment.as_deref().unwrap_or("(not set)")
            );
            Ok(())
        }
        ConfigCommand::Set { key, value } => {
            let value = match key {
                Key::Url => config::normalize_url(&value).map_err(|e| CliError::Input(e.to_string()))?,
                Key::ApiKey if value.trim().is_empty() => {
                    return Err(CliError::Input("the API key is empty".into()));
                }
                Key::ApiKey => value.trim().to_owned(),
                Key::Agent | Key::Environment => resources::id_segment(value.trim())?.to_owned(),
            };
            let mut file = FileConfig::load(path)?;
            file.set(key, Some(value));
            file.save(path)?;
            eprintln!("set {} in {}", key.name(), path.display());
            Ok(())
        }
        ConfigCommand::Unset { key } => {
            let mut file = FileConfig::load(path)?;
            file.set(key, None);
            file.save(path)?;
            eprintln!("removed {} from {}", key.name(), path.display());
            Ok(())
        }
    }
}
