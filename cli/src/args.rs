//! The command line: every command, flag and the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Key;

const EXAMPLES: &str = "\
Examples:
  corral config set url http://localhost:8080
  corral config set api-key sk-corral-…
  corral agents create --name coder --model claude-sonnet-4-5 --system 'You write Rust.'
  corral environments create -f env.yaml
  corral sessions create --agent agent-01J… --env env-01J… --title 'fix the build'
  corral run --agent agent-01J… --env env-01J… 'list the files in /workspace'
  corral chat sesn-01J…
  corral chat --agent agent-01J… --env env-01J…
  corral files upload ./data.csv
  corral events sesn-01J… --follow
  corral sessions list -o json | jq '.[].id'

Configuration: --url/--api-key, else CORRAL_URL/CORRAL_API_KEY, else the config file
(~/.config/corral/config.toml, or --config/CORRAL_CONFIG). Colors follow NO_COLOR and CLICOLOR_FORCE.
Exit codes: 0 ok, 1 API or network error, 2 bad input, 3 not configured, 4 key refused (401/403),
5 not found (404), 130 interrupted.";

/// `corral`: drive Corral's agents, environments and sessions from the terminal.
#[derive(Debug, Parser)]
#[command(name = "corral", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// The gateway's base URL.
    #[arg(long, global = true, env = "CORRAL_URL", value_name = "URL")]
    pub url: Option<String>,
    /// The API key (sent as `Authorization: Bearer`).
    #[arg(
        long,
        global = true,
        env = "CORRAL_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// The config file (default: ~/.config/corral/config.toml).
    #[arg(long, global = true, env = "CORRAL_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Output format: human tables and lines (`wide`: every column, nothing cut), JSON (YAML) for machines, or
    /// `name`: the ids alone, one per line.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Tables and readable lines.
    Table,
    /// JSON: objects as the API returns them, lists as arrays, streamed events one per line.
    Json,
    /// YAML of the same data as JSON.
    Yaml,
    /// Tables with every column and whole cells (as wide as they need; for a terminal that scrolls or a file).
    Wide,
    /// The ids alone, one per line (`corral sessions list -o name | xargs -n1 corral sessions archive`).
    Name,
}

impl Output {
    /// Whether the output is for people (tables and readable lines), not for machines.
    pub fn human(self) -> bool {
        matches!(self, Self::Table | Self::Wide)
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Agents: the model, system prompt and tools of an agent.
    #[command(subcommand, visible_alias = "agent")]
    Agents(AgentCommand),
    /// Environments: where an agent's tools run (networking, packages, sandbox).
    #[command(subcommand, visible_aliases = ["environment", "env", "envs"])]
    Environments(EnvironmentCommand),
    /// Sessions: an agent at work in an environment.
    #[command(subcommand, visible_alias = "session")]
    Sessions(SessionCommand),
    /// Send a message to a session (it starts a turn) and print the stored event.
    Send(SendArgs),
    /// Stop the session's current turn (sends `user.interrupt`).
    Interrupt(SessionArg),
    /// Confirm (or with --deny refuse) a tool call that waits for a person (sends `user.tool_confirmation`).
    Approve(ApproveArgs),
    /// Talk with a session (a new one without a session id): type a message, watch the agent's answer, tool
    /// calls and results stream live.
    #[command(
        after_help = "Ctrl-C during a turn interrupts the agent; a second Ctrl-C (or Ctrl-D at the prompt) \
                            exits.\nWith standard input not a terminal, each input line is one message.\nCommands: /interrupt, \
                            /usage, /cost, /viewer (the trace viewer's URL), /help, /quit; //text sends /text.\nWithout a \
                            session id, chat creates a session with --agent and --env, or the config's defaults \
                            (`corral config set agent …`, `corral config set environment …`)."
    )]
    Chat(ChatArgs),
    /// A session's events: list the history, replay from a point, or follow live.
    Events(EventsArgs),
    /// Create a session, send one prompt and stream the turn until the agent is idle.
    Run(RunArgs),
    /// Files: upload, download, list and remove the files of your namespace (the Files API).
    #[command(subcommand, visible_alias = "file")]
    Files(FileCommand),
    /// Skills: upload a skill's directory, its new versions, list, download and remove them (the Skills API).
    #[command(subcommand, visible_alias = "skill")]
    Skills(SkillCommand),
    /// Read and write the config file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (for example `corral completions bash > /etc/bash_completion.d/corral`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Options of list commands.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// At most this many objects.
    #[arg(long, default_value_t = 50, conflicts_with = "all")]
    pub limit: usize,
    /// Every object, following every page.
    #[arg(long)]
    pub all: bool,
    /// Include archived objects.
    #[arg(long)]
    pub include_archived: bool,
}

/// A resource's id.
#[derive(Debug, Clone, Args)]
pub struct IdArg {
    /// The id.
    pub id: String,
}

/// Where a create command reads its body, and `key=value` metadata.
#[derive(Debug, Clone, Args)]
pub struct CreateCommon {
    /// A YAML or JSON file with the request body in the API's shape (`-` reads standard input); flags given
    /// as well override its fields.
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Metadata `key=value` (repeatable).
    #[arg(long = "metadata", short = 'm', value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
}

/// Agent commands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Create an agent from a file or flags.
    #[command(
        after_help = "Example file (YAML):\n  name: coder\n  model: claude-sonnet-4-5\n  system: You write \
                            Rust.\n  tools:\n    - type: agent_toolset_20260401"
    )]
    Create(AgentCreateArgs),
    /// Show an agent (its latest version, or --version).
    #[command(visible_alias = "show")]
    Get {
        /// The agent's id.
        id: String,
        /// A past version.
        #[arg(long)]
        version: Option<u32>,
    },
    /// List agents, newest first.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// List every version of an agent, newest first.
    Versions(IdArg),
    /// Archive an agent: lists hide it and new sessions cannot use it.
    Archive(IdArg),
    /// Agents are archived, not deleted.
    #[command(hide = true)]
    Delete(IdArg),
}

/// `agents create`.
#[derive(Debug, Clone, Args)]
pub struct AgentCreateArgs {
    /// File and metadata.
    #[command(flatten)]
    pub common: CreateCommon,
    /// The agent's name.
    #[arg(long)]
    pub name: Option<String>,
    /// The model id (for example claude-sonnet-4-5).
    #[arg(long)]
    pub model: Option<String>,
    /// The system prompt (`@FILE` reads it from a file).
    #[arg(long)]
    pub system: Option<String>,
    /// A description.
    #[arg(long)]
    pub description: Option<String>,
    /// Which provider serves the model (Corral's `model.provider.type`).
    #[arg(long, value_parser = ["anthropic", "openai", "scripted"])]
    pub provider: Option<String>,
    /// The Secret key holding a scripted provider's script, as SECRET/KEY (implies --provider scripted).
    #[arg(long, value_name = "SECRET/KEY")]
    pub script_ref: Option<String>,
    /// The Secret key holding the provider's API key, as SECRET/KEY. The Secret must be labelled
    /// `corral.dev/credential=model`.
    #[arg(long, value_name = "SECRET/KEY")]
    pub api_key_ref: Option<String>,
    /// Give the agent the built-in toolset (bash, files, search).
    #[arg(long)]
    pub toolset: bool,
}

/// Environment commands.
#[derive(Debug, Subcommand)]
pub enum EnvironmentCommand {
    /// Create an environment from a file or flags.
    #[command(
        after_help = "Example file (YAML):\n  name: rust\n  config:\n    type: cloud\n    networking:\n      \
                            type: limited\n      allowed_hosts: [crates.io]\n    packages:\n      apt: [ripgrep]"
    )]
    Create(EnvironmentCreateArgs),
    /// Show an environment.
    #[command(visible_alias = "show")]
    Get(IdArg),
    /// List environments, newest first.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Archive an environment: new sessions cannot use it.
    Archive(IdArg),
    /// Delete an environment.
    #[command(visible_alias = "rm")]
    Delete(IdArg),
}

/// `environments create`.
#[derive(Debug, Clone, Args)]
pub struct EnvironmentCreateArgs {
    /// File and metadata.
    #[command(flatten)]
    pub common: CreateCommon,
    /// The environment's name.
    #[arg(long)]
    pub name: Option<String>,
    /// A description.
    #[arg(long)]
    pub description: Option<String>,
    /// Networking of the sandbox.
    #[arg(long, value_parser = ["unrestricted", "limited"])]
    pub networking: Option<String>,
    /// A host the sandbox may reach with `--networking limited` (repeatable).
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
}

/// Session commands.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Create a session from a file or flags.
    Create(SessionCreateArgs),
    /// Show a session.
    #[command(visible_alias = "show")]
    Get(IdArg),
    /// List sessions, newest first.
    #[command(visible_alias = "ls")]
    List(SessionListArgs),
    /// Archive a session.
    Archive(IdArg),
    /// Delete a session and its events.
    #[command(visible_alias = "rm")]
    Delete(IdArg),
}

/// `sessions create`.
#[derive(Debug, Clone, Args)]
pub struct SessionCreateArgs {
    /// File and metadata.
    #[command(flatten)]
    pub common: CreateCommon,
    /// The agent's id.
    #[arg(long)]
    pub agent: Option<String>,
    /// The agent's version (default: the latest).
    #[arg(long, requires = "agent")]
    pub agent_version: Option<u32>,
    /// The environment's id.
    #[arg(long = "env", visible_alias = "environment")]
    pub environment: Option<String>,
    /// A title.
    #[arg(long)]
    pub title: Option<String>,
}

/// `sessions list`.
#[derive(Debug, Clone, Args)]
pub struct SessionListArgs {
    /// Paging and archived objects.
    #[command(flatten)]
    pub list: ListArgs,
    /// Only sessions of this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only sessions with this status (repeatable).
    #[arg(long, value_parser = ["idle", "running", "rescheduling", "terminated"])]
    pub status: Vec<String>,
}

/// A session's id.
#[derive(Debug, Clone, Args)]
pub struct SessionArg {
    /// The session's id.
    pub session: String,
}

/// `send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The session's id.
    pub session: String,
    /// The message (several words are joined with spaces; `-` reads standard input).
    #[arg(required = true, num_args = 1..)]
    pub text: Vec<String>,
    /// Then stream the turn until the agent is idle.
    #[arg(short, long)]
    pub wait: bool,
}

/// `approve`.
#[derive(Debug, Clone, Args)]
pub struct ApproveArgs {
    /// The session's id.
    pub session: String,
    /// The waiting `agent.tool_use` (or `agent.mcp_tool_use`) event's id.
    pub tool_use: String,
    /// Refuse the call instead of allowing it.
    #[arg(long)]
    pub deny: bool,
    /// With --deny: the reason the model reads.
    #[arg(long, requires = "deny")]
    pub message: Option<String>,
    /// A file holding your own Kubernetes token (`-` reads standard input), for gateways that check approvals
    /// with Kubernetes RBAC; for example `--approver-token-file <(kubectl create token alice)`. Without it the
    /// token comes from CORRAL_APPROVER_TOKEN, if set.
    #[arg(long, value_name = "PATH")]
    pub approver_token_file: Option<String>,
}

/// `events`.
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// The session's id.
    pub session: String,
    /// Keep the stream open and print events as they come (reconnects without losing any).
    #[arg(short, long)]
    pub follow: bool,
    /// Start after this point: an event id (`sevt_…`) or a stream cursor (`<millis>-<seq>`).
    #[arg(long, value_name = "EVENT|CURSOR")]
    pub after: Option<String>,
    /// With --follow: skip the history and print only events from now on.
    #[arg(long, requires = "follow", conflicts_with = "after")]
    pub new: bool,
    /// Only events of this type (repeatable), like agent.message or session.status_idle.
    #[arg(short, long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Without --follow: at most this many events.
    #[arg(long, conflicts_with = "follow")]
    pub limit: Option<usize>,
}

/// The agent, environment and title of a session `run` or `chat` starts.
#[derive(Debug, Clone, Args)]
pub struct NewSession {
    /// The agent's id (default: `corral config set agent …`).
    #[arg(long)]
    pub agent: Option<String>,
    /// The environment's id (default: `corral config set environment …`).
    #[arg(long = "env", visible_alias = "environment")]
    pub environment: Option<String>,
    /// The new session's title.
    #[arg(long)]
    pub title: Option<String>,
}

/// `chat`.
#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    /// The session's id; without it, chat starts a new session.
    #[arg(conflicts_with_all = ["agent", "environment", "title"])]
    pub session: Option<String>,
    /// The new session (without a session id).
    #[command(flatten)]
    pub new: NewSession,
}

/// `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The new session.
    #[command(flatten)]
    pub new: NewSession,
    /// The prompt (several words are joined with spaces; `-` reads standard input).
    #[arg(required = true, num_args = 1..)]
    pub prompt: Vec<String>,
}

/// File commands.
#[derive(Debug, Subcommand)]
pub enum FileCommand {
    /// Upload a file: streamed from disk (never read whole into memory), with a progress bar on a terminal.
    Upload(FileUploadArgs),
    /// Download a file's content: streamed to disk, with a progress bar on a terminal.
    Download(FileDownloadArgs),
    /// Show a file's metadata.
    #[command(visible_alias = "show")]
    Get(IdArg),
    /// List files, newest first.
    #[command(visible_alias = "ls")]
    List(FileListArgs),
    /// Delete a file (its metadata and its bytes).
    #[command(visible_alias = "rm")]
    Delete(IdArg),
}

/// `files upload`.
#[derive(Debug, Clone, Args)]
pub struct FileUploadArgs {
    /// The file to upload.
    pub path: PathBuf,
    /// The name to store (default: the file's own name).
    #[arg(long)]
    pub name: Option<String>,
    /// The content type (default: guessed from the name's extension, else application/octet-stream).
    #[arg(long, value_name = "TYPE")]
    pub mime_type: Option<String>,
    /// Delete the file this many seconds after the upload (3600 to 7776000).
    #[arg(long, value_name = "SECONDS")]
    pub expires_in: Option<u64>,
}

/// `files download`.
#[derive(Debug, Clone, Args)]
pub struct FileDownloadArgs {
    /// The file's id.
    pub id: String,
    /// Where to write it (default: its stored name in the current directory; `-` writes standard output).
    #[arg(value_name = "DEST")]
    pub dest: Option<PathBuf>,
    /// Replace DEST when it exists.
    #[arg(long)]
    pub force: bool,
}

/// `files list`.
#[derive(Debug, Clone, Args)]
pub struct FileListArgs {
    /// At most this many files.
    #[arg(long, default_value_t = 50, conflicts_with = "all")]
    pub limit: usize,
    /// Every file, following every page.
    #[arg(long)]
    pub all: bool,
    /// Only the files of this scope (a session's id: the files it produced).
    #[arg(long, value_name = "ID")]
    pub scope: Option<String>,
}

/// `skills`.
#[derive(Debug, Clone, Subcommand)]
pub enum SkillCommand {
    /// Upload a skill: DIR holds SKILL.md (frontmatter `name` and `description`) and the files it points to.
    Create(SkillUploadArgs),
    /// Upload a new version of a skill from DIR (the skill's name cannot change).
    Update(SkillVersionArgs),
    /// Show a skill.
    #[command(visible_alias = "show")]
    Get(IdArg),
    /// List skills, newest first.
    #[command(visible_alias = "ls")]
    List(SkillListArgs),
    /// List a skill's versions, newest first.
    Versions(IdArg),
    /// Download a skill version's files as a zip.
    Download(SkillDownloadArgs),
    /// Delete a skill and every version.
    #[command(visible_alias = "rm")]
    Delete(IdArg),
}

/// `skills create`.
#[derive(Debug, Clone, Args)]
pub struct SkillUploadArgs {
    /// The skill's directory.
    pub dir: PathBuf,
    /// The name people see (default: SKILL.md's name).
    #[arg(long)]
    pub display_name: Option<String>,
}

/// `skills list`.
#[derive(Debug, Clone, Args)]
pub struct SkillListArgs {
    /// At most this many skills.
    #[arg(long, default_value_t = 50, conflicts_with = "all")]
    pub limit: usize,
    /// Every skill, following every page.
    #[arg(long)]
    pub all: bool,
}

/// `skills update`.
#[derive(Debug, Clone, Args)]
pub struct SkillVersionArgs {
    /// The skill's id.
    pub id: String,
    /// The directory of the new version.
    pub dir: PathBuf,
}

/// `skills download`.
#[derive(Debug, Clone, Args)]
pub struct SkillDownloadArgs {
    /// The skill's id.
    pub id: String,
    /// The version (default: the newest).
    #[arg(long, default_value = "latest")]
    pub version: String,
    /// Where to write the zip (default: `<id>-<version>.zip` in the current directory; `-` writes standard output).
    #[arg(value_name = "DEST")]
    pub dest: Option<PathBuf>,
    /// Replace DEST when it exists.
    #[arg(long)]
    pub force: bool,
}

/// `config`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Set a value in the config file.
    Set {
        /// `url`, `api-key`, `agent` or `environment`.
        key: Key,
        /// The value.
        value: String,
    },
    /// Print a value from the config file (without a key: the whole file, with the API key masked).
    Get {
        /// `url`, `api-key`, `agent` or `environment`.
        key: Option<Key>,
    },
    /// Remove a value from the config file.
    Unset {
        /// `url`, `api-key`, `agent` or `environment`.
        key: Key,
    },
    /// Print the config file's path.
    Path,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn aliases_and_repeated_flags_parse() {
        let cli = Cli::try_parse_from(["corral", "env", "ls", "--all", "-o", "json"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Environments(EnvironmentCommand::List(ListArgs { all: true, .. }))
        ));
        assert_eq!(cli.output, Output::Json);
        let cli = Cli::try_parse_from([
            "corral",
            "events",
            "sesn-1",
            "-f",
            "-t",
            "agent.message",
            "-t",
            "user.message",
        ])
        .expect("parses");
        let Command::Events(args) = cli.command else {
            panic!("events")
        };
        assert!(args.follow);
        assert_eq!(args.types, ["agent.message", "user.message"]);
        assert!(
            Cli::try_parse_from(["corral", "events", "s", "--new"]).is_err(),
            "--new needs --follow"
        );
        assert!(
            Cli::try_parse_from(["corral", "send", "s"]).is_err(),
            "send needs text"
        );
    }
}
