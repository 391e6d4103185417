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

/// A span another component measured and this process exports on its behalf, as a child of the current span: the
/// sandbox daemon has no route to a collector (and is not trusted with one), so the harness relays its timings.
#[derive(Clone, Debug)]
pub struct RelayedSpan {
    /// The component that measured it: the span's `service.name`.
    pub service: &'static str,
    /// The span's name.
    pub name: &'static str,
    /// When it started.
    pub start: std::time::SystemTime,
    /// When it ended.
    pub end: std::time::SystemTime,
    /// Its attributes.
    pub attributes: Vec<(&'static str, String)>,
}

/// Exports `span` as a child of the current span (nothing when traces are off or the current span is not sampled).
pub fn relay(span: RelayedSpan) {
    imp::relay(span);
}

#[cfg(feature = "otlp")]
pub(crate) use imp::layer;

#[cfg(feature = "otlp")]
mod imp {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock, PoisonError};

    use opentelemetry::KeyValue;
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
    use opentelemetry_otlp::{SpanExporter, WithExportConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::Layer;
    use tracing_subscriber::registry::LookupSpan;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
    /// The collector's traces URL, for the providers of relayed spans.
    static TRACES_URL: OnceLock<String> = OnceLock::new();
    /// One provider per component whose spans this process relays (each has its own `service.name`).
    static RELAYED: Mutex<Vec<(&'static str, SdkTracerProvider)>> = Mutex::new(Vec::new());

    fn provider(url: &str, service: &str) -> anyhow::Result<SdkTracerProvider> {
        let exporter = SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .build()
            .map_err(|e| anyhow::anyhow!("building the OTLP exporter for {url}: {e}"))?;
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service.to_owned()).build())
            .build())
    }

    /// The tracing layer exporting spans to `endpoint` (OTLP/HTTP, `/v1/traces` appended) as `service`.
    pub(crate) fn layer<S>(endpoint: &str, service: &str) -> anyhow::Result<impl Layer<S> + use<S>>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        // reqwest is built without a default TLS crypto provider in this workspace.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let provider = provider(&url, service)?;
        let tracer = provider.tracer("corral");
        let _ = PROVIDER.set(provider);
        let _ = TRACES_URL.set(url);
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
        for (_, provider) in RELAYED.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = provider.force_flush();
        }
    }

    pub(super) fn relay(span: super::RelayedSpan) {
        let Some(url) = TRACES_URL.get() else {
            return;
        };
        let parent = tracing::Span::current().context();
        if !parent.span().span_context().is_sampled() {
            return;
        }
        let tracer = {
            let mut relayed = RELAYED.lock().unwrap_or_else(PoisonError::into_inner);
            match relayed.iter().find(|(service, _)| *service == span.service) {
                Some((_, provider)) => provider.tracer("corral"),
                None => match provider(url, span.service) {
                    Ok(provider) => {
                        let tracer = provider.tracer("corral");
                        relayed.push((span.service, provider));
                        tracer
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, service = span.service, "cannot export relayed spans");
                        return;
                    }
                },
            }
        };
        let attributes = span
            .attributes
            .into_iter()
            .map(|(key, value)| KeyValue::new(key, value))
            .collect::<Vec<_>>();
        let mut exported = tracer
            .span_builder(span.name)
            .with_kind(SpanKind::Server)
            .with_start_time(span.start)
            .with_attributes(attributes)
            .start_with_context(&tracer, &parent);
        exported.end_with_timestamp(span.end);
    }
}

#[cfg(not(feature = "otlp"))]
mod imp {
    pub(super) fn current_traceparent() -> Option<String> {
        None
    }

    pub(super) fn set_parent(_: &tracing::Span, _: &str) {}

    pub(super) fn flush() {}

    pub(super) fn relay(_: super::RelayedSpan) {}
}
