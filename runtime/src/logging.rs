//! Structured logging with `tracing`, configured by flags shared by every binary.

use clap::{Args, ValueEnum};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Log settings shared by every Corral binary.
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log filter in `tracing` syntax, for example `info` or `info,corral_operator=debug`.
    #[arg(long = "log", env = "CORRAL_LOG", default_value = "info")]
    pub filter: String,
    /// Log line format: `json` for machines, `text` for people.
    #[arg(long = "log-format", env = "CORRAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub format: LogFormat,
}

/// Log line formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, with span fields.
    Json,
    /// Human-readable lines.
    Text,
}

impl LogArgs {
    /// Installs the global subscriber. Fails when the filter does not parse.
    pub fn init(&self) -> anyhow::Result<()> {
        let filter = EnvFilter::try_new(&self.filter)
            .map_err(|e| anyhow::anyhow!("invalid --log filter {:?}: {e}", self.filter))?;
        let registry = tracing_subscriber::registry().with(filter);
        match self.format {
            LogFormat::Json => registry
                .with(fmt::layer().json().flatten_event(true).with_current_span(true))
                .try_init(),
            LogFormat::Text => registry.with(fmt::layer().with_target(false)).try_init(),
        }
        .map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
    }
}
