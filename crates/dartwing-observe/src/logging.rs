//! Structured logging: one JSON object per line with the SPEC §9 fields.
//!
//! Fields recorded on enclosing spans (`trace_id`, `user`, `organization`, `doctype`, …) are
//! lifted to the top level of every event inside them, so a request's trace id reaches every
//! line it causes. Each line also carries `timestamp`, `level`, `message`, `target` and `node_id`.

use dartwing_core::config::{LogFormat, ObservabilityConfig};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Log lines waiting for the writer thread before new lines are dropped (and counted in
/// `log_lines_dropped_total`) instead of blocking the request or job that logs them.
pub const LOG_QUEUE_LINES: usize = 65_536;

/// Lines the log writer dropped because its queue was full, for `log_lines_dropped_total`.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Bytes of log lines the writer thread gathers before writing them to stdout.
const LOG_WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// The number of log lines dropped so far because the writer could not keep up.
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| u64::try_from(counter.dropped_lines()).unwrap_or(u64::MAX))
}

/// Keeps the log writer thread running; dropping it writes out every queued line. Hold it until
/// the process is done.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(#[allow(dead_code)] WorkerGuard);

/// Installs the global subscriber for this process: JSON lines (or text) on stdout, filtered by
/// `log_level`. Lines are formatted on the logging thread and written by a writer thread of their
/// own through a bounded queue ([`LOG_QUEUE_LINES`]), so a slow stdout never stalls requests;
/// when the queue is full, lines are dropped and counted. Fails when the filter does not parse or
/// a subscriber is already installed.
pub fn init(config: &ObservabilityConfig, node_id: &str) -> Result<LogGuard, String> {
    let filter = EnvFilter::try_new(&config.log_level)
        .map_err(|e| format!("invalid configuration key `observability.log_level`: {e}"))?;
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("dartwing-log-writer")
        // The writer thread writes what is queued, then flushes once the queue is empty: lines
        // leave in large writes rather than one system call each.
        .finish(std::io::BufWriter::with_capacity(
            LOG_WRITE_BUFFER_BYTES,
            std::io::stdout(),
        ));
    let dropped = writer.error_counter();
    let result = match config.log_format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(JsonLayer::new(node_id, writer))
            .try_init(),
        LogFormat::Text => tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_target(false).with_writer(writer))
            .try_init(),
    };
    result.map_err(|e| e.to_string())?;
    // Only the process's one subscriber gets here.
    let _ = DROPPED.set(dropped);
    log_panics();
    Ok(LogGuard(guard))
}

/// Logs every panic as one error line with `error_type = "Panic"` and the `stack_trace` where it
/// happened (inside the request's or job's span, so it carries their trace id). Stack traces stay
/// in server logs; clients get a plain 500.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-text panic payload".into());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let stack_trace = std::backtrace::Backtrace::force_capture();
        tracing::error!(
            error_type = "Panic",
            location = %location,
            stack_trace = %stack_trace,
            "panic: {payload}"
        );
    }));
}

/// A [`Layer`] writing one JSON object per event.
pub struct JsonLayer<W> {
    node_id: String,
    make_writer: W,
}

impl<W> JsonLayer<W> {
    /// A layer stamping `node_id` on every line and writing through `make_writer`.
    pub fn new(node_id: &str, make_writer: W) -> Self {
        Self {
            node_id: node_id.to_string(),
            make_writer,
        }
    }
}

/// Fields recorded on a span, stored in its extensions.
struct SpanFields(Map<String, Value>);

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut fields = Map::new();
            attrs.record(&mut JsonVisitor(&mut fields));
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut JsonVisitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // Borrow the span fields instead of copying them; keys sort, later sources win.
        let timestamp = Value::from(dartwing_core::Timestamp::now().to_string());
        let level = Value::from(event.metadata().level().as_str().to_ascii_lowercase());
        let empty = Value::from("");
        let target = Value::from(event.metadata().target());
        let node_id = Value::from(self.node_id.as_str());
        let mut own = Map::new();
        event.record(&mut JsonVisitor(&mut own));
        let spans: Vec<_> = ctx
            .event_scope(event)
            .map(|scope| scope.from_root().collect())
            .unwrap_or_default();
        let extensions: Vec<_> = spans.iter().map(|span| span.extensions()).collect();
        let mut line: BTreeMap<&str, &Value> = BTreeMap::new();
        line.insert("timestamp", &timestamp);
        line.insert("level", &level);
        line.insert("message", &empty);
        for fields in extensions.iter().filter_map(|e| e.get::<SpanFields>()) {
            line.extend(fields.0.iter().map(|(k, v)| (k.as_str(), v)));
        }
        line.extend(own.iter().map(|(k, v)| (k.as_str(), v)));
        line.insert("target", &target);
        line.insert("node_id", &node_id);
        let mut text = Vec::with_capacity(512);
        if serde_json::to_writer(&mut text, &line).is_ok() {
            text.push(b'\n');
            let mut writer = self.make_writer.make_writer();
            // A failed log write has nowhere better to be reported.
            let _ = writer.write_all(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn span_fields_reach_every_line_at_top_level() -> Result<(), Box<dyn std::error::Error>> {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(JsonLayer::new("node-1", capture.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", trace_id = "abc123", user = tracing::field::Empty);
            let _guard = span.enter();
            span.record("user", "ann@example.com");
            tracing::warn!(duration_ms = 12u64, "slow thing");
        });
        let text = String::from_utf8(capture.0.lock().map_err(|_| "poisoned")?.clone())?;
        let line: Value = serde_json::from_str(text.trim())?;
        assert_eq!(line["message"], "slow thing");
        assert_eq!(line["level"], "warn");
        assert_eq!(line["trace_id"], "abc123");
        assert_eq!(line["user"], "ann@example.com");
        assert_eq!(line["node_id"], "node-1");
        assert_eq!(line["duration_ms"], 12);
        assert!(line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
        Ok(())
    }
}
