//! OpenTelemetry traces: an OTLP/HTTP exporter behind configuration (off unless an endpoint is given), and the W3C
//! `traceparent` that carries a turn's trace across components: the gateway stores it with the user event in the
//! session log, the harness continues the trace from it, and sandbox calls carry it as a header.
//!
//! Without the `otlp` feature, or without an endpoint, spans are only log context and no `traceparent` exists.

/// The `traceparent` of the current span, when traces are exported and the span is sampled.
pub fn current_traceparent() -> Option<String> {
    imp::current_traceparent()
}

/// Makes `span` a child of the remote span named by `traceparent` (ignored when it does not parse or traces are off).
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    imp::set_parent(span, traceparent);
}

/// Exports the spans still buffered; call before the process exits.
pub fn flush() {
    imp::flush();
}

#[cfg(feature = "otlp")]
pub(crate) use imp::layer;

#[cfg(feature = "otlp")]
mod imp {
    use std::collections::HashMap;
    use std::sync::OnceLock;

    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{SpanExporter, WithExportConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::Layer;
    use tracing_subscriber::registry::LookupSpan;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The tracing layer exporting spans to `endpoint` (OTLP/HTTP, `/v1/traces` appended) as `service`.
    pub(crate) fn layer<S>(endpoint: &str, service: &str) -> anyhow::Result<impl Layer<S> + use<S>>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        // reqwest is built without a default TLS crypto provider in this workspace.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .build()
            .map_err(|e| anyhow::anyhow!("building the OTLP exporter for {endpoint}: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service.to_owned()).build())
            .build();
        let tracer = provider.tracer("corral");
        let _ = PROVIDER.set(provider);
        Ok(tracing_opentelemetry::layer().with_tracer(tracer))
    }

    pub(super) fn current_traceparent() -> Option<String> {
        PROVIDER.get()?;
        let context = tracing::Span::current().context();
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
        carrier.remove("traceparent")
    }

    pub(super) fn set_parent(span: &tracing::Span, traceparent: &str) {
        if PROVIDER.get().is_none() {
            return;
        }
        let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        let context = TraceContextPropagator::new().extract(&carrier);
        let _ = span.set_parent(context);
    }

    pub(super) fn flush() {
        if let Some(provider) = PROVIDER.get() {
            let _ = provider.force_flush();
        }
    }
}

#[cfg(not(feature = "otlp"))]
mod imp {
    pub(super) fn current_traceparent() -> Option<String> {
        None
    }

    pub(super) fn set_parent(_: &tracing::Span, _: &str) {}

    pub(super) fn flush() {}
}
