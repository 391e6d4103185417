//! Structured logging with `tracing`, configured by flags shared by every binary.

use clap::{Args, ValueEnum};
use tracing_subscriber::{EnvFilter, Layer, fmt, prelude::*};

/// Log settings shared by every Corral binary.
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log filter in `tracing` syntax, for example `info` or `info,corral_operator=debug`.
    #[arg(long = "log", env = "CORRAL_LOG", default_value = "info")]
    pub filter: String,
    /// Log line format: `json` for machines, `text` for people.
    #[arg(long = "log-format", env = "CORRAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub format: LogFormat,
    /// Export OpenTelemetry traces over OTLP/HTTP to this endpoint (for example `http://otel-collector:4318`);
    /// off when empty.
    #[arg(
        long = "otlp-endpoint",
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        default_value = ""
    )]
    pub otlp_endpoint: String,
    /// The `service.name` of exported traces; the binary's name when empty.
    #[arg(long = "otel-service-name", env = "OTEL_SERVICE_NAME", default_value = "")]
    pub service_name: String,
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
        // The log filter applies to log lines only: exported traces always carry Corral's spans (info and above).
        let spans = EnvFilter::new(
            "warn,corral=info,corral_gateway=info,corral_harness=info,corral_operator=info,corral_sandbox=info",
        );
        let registry = tracing_subscriber::registry().with(self.otel_layer()?.with_filter(spans));
        match self.format {
            LogFormat::Json => registry
                .with(
                    fmt::layer()
                        .json()
                        .flatten_event(true)
                        .with_current_span(true)
                        .with_filter(filter),
                )
                .try_init(),
            LogFormat::Text => registry
                .with(fmt::layer().with_target(false).with_filter(filter))
                .try_init(),
        }
        .map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
    }

    /// The service name of exported traces.
    pub fn service(&self) -> String {
        if !self.service_name.is_empty() {
            return self.service_name.clone();
        }
        std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "corral".to_owned())
    }

    #[cfg(feature = "otlp")]
    fn otel_layer<S>(&self) -> anyhow::Result<Option<impl tracing_subscriber::Layer<S> + use<S>>>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        if self.otlp_endpoint.is_empty() {
            return Ok(None);
        }
        crate::telemetry::layer(&self.otlp_endpoint, &self.service()).map(Some)
    }

    #[cfg(not(feature = "otlp"))]
    fn otel_layer(&self) -> anyhow::Result<Option<tracing_subscriber::layer::Identity>> {
        if !self.otlp_endpoint.is_empty() {
            tracing::warn!("this binary is built without OTLP export; --otlp-endpoint is ignored");
        }
        Ok(None)
    }
}
