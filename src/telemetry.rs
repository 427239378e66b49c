//! Logs (tracing; JSON in production, every line of a request carrying its
//! `request_id` through the request span) and the Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::settings::LogFormat;

/// Install the global log subscriber. `RUST_LOG` filters (default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().compact()).try_init(),
    };
}

static METRICS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus recorder (installed on first use; several servers in
/// one test process share it).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    METRICS
        .get_or_init(|| {
            let latency = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            let slow = [
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ];
            // Time from submission to a verdict: minutes to weeks.
            let review = [
                60.0,
                300.0,
                900.0,
                3600.0,
                4.0 * 3600.0,
                86_400.0,
                3.0 * 86_400.0,
                7.0 * 86_400.0,
                30.0 * 86_400.0,
            ];
            let groups = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
            // Histograms with buckets of their own. One left out would be a summary, which
            // the dashboard's quantiles (histogram_quantile over `_bucket`) cannot read.
            let buckets: [(&str, &[f64]); 12] = [
                ("http_request_duration_seconds", &latency),
                ("password_hash_duration_seconds", &latency),
                ("job_duration_seconds", &slow),
                ("export_duration_seconds", &slow),
                ("review_time_to_verdict_seconds", &review),
                ("project_group_commit_seconds", &latency),
                ("project_actor_turn_seconds", &latency),
                ("project_transition_seconds", &latency),
                ("project_group_stage_seconds", &latency),
                ("webhook_attempt_duration_seconds", &latency),
                ("project_group_commands", &groups),
                ("sqlite_write_turn_wait_seconds", &latency),
            ];
            let builder = buckets.into_iter().try_fold(
                PrometheusBuilder::new(),
                |builder, (name, buckets)| {
                    builder.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
                },
            );
            match builder.and_then(|b| b.install_recorder()) {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}
