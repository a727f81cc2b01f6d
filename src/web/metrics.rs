//! `GET /metrics`: Prometheus text exposition, written by hand from a few aggregate queries.
//! Open without a session, like the health checks; it carries counts, never personal data.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use super::webhooks::Refusals;
use crate::store::{
    DESTINATIONS, LAG_BUCKETS_SECONDS, LagHistogram, MetricCounts, QUEUE_STATES,
    ReconciliationStatus, Store,
};

/// The metrics, or 503 when the database cannot be read.
pub async fn metrics(
    State(store): State<Store>,
    State(refusals): State<Arc<Refusals>>,
) -> Response {
    let read = async {
        let counts = store.metric_counts().await?;
        let reconciliation = store.reconciliation_status().await?;
        Ok::<_, crate::store::StoreError>((counts, reconciliation))
    };
    match read.await {
        Ok((counts, reconciliation)) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            render(&counts)
                + &render_reconciliation(reconciliation.as_ref())
                + &render_refusals(&refusals)
                + &render_group_commit(&store)
                + &render_pg_batches(&store),
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "metrics could not be read");
            (StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable\n").into_response()
        }
    }
}

/// How often a process folds the metric counters of closed connections (PostgreSQL).
const COUNTER_FOLD: std::time::Duration = std::time::Duration::from_secs(60);

/// Folds the metric counters of closed PostgreSQL connections every [`COUNTER_FOLD`], for as
/// long as the process runs (see [`Store::fold_metric_counts`]).
pub fn spawn_counter_fold(store: &Store) {
    let store = store.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(COUNTER_FOLD);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(err) = store.fold_metric_counts().await {
                tracing::warn!(error = %err, "folding the metric counters failed");
            }
        }
    });
}

/// What the last reconciliation pass found: the store's orders that were missing here or
/// behind it (the reconciliation delta), and whether the last pass failed. Nothing before the
/// first pass.
fn render_reconciliation(status: Option<&ReconciliationStatus>) -> String {
    let mut out = String::new();
    let Some(status) = status else {
        return out;
    };
    header_lines(
        &mut out,
        "syncdesk_reconciliation_delta",
        "gauge",
        "Orders the last reconciliation pass found missing here or behind the store (and took in).",
    );
    let _ = writeln!(
        out,
        "syncdesk_reconciliation_delta{{kind=\"missing\"}} {}",
        status.last_missing
    );
    let _ = writeln!(
        out,
        "syncdesk_reconciliation_delta{{kind=\"behind\"}} {}",
        status.last_behind
    );
    single(
        &mut out,
        "syncdesk_reconciliation_checked",
        "gauge",
        "Orders the last reconciliation pass read from the store.",
        status.last_checked,
    );
    single(
        &mut out,
        "syncdesk_reconciliation_passes_total",
        "counter",
        "Reconciliation passes finished, successful or not.",
        status.passes,
    );
    single(
        &mut out,
        "syncdesk_reconciliation_failing",
        "gauge",
        "1 when the last reconciliation pass could not read the store.",
        u8::from(status.last_error.is_some()),
    );
    out
}

/// Webhooks this process refused before storing anything.
fn render_refusals(refusals: &Refusals) -> String {
    let mut out = String::new();
    header_lines(
        &mut out,
        "syncdesk_webhooks_rejected_total",
        "counter",
        "Webhooks refused before storage by this process (bad signature, malformed, too large).",
    );
    for (reason, n) in refusals.counts() {
        let _ = writeln!(
            out,
            "syncdesk_webhooks_rejected_total{{reason=\"{reason}\"}} {n}"
        );
    }
    out
}

/// SQLite's group commit in this process: commits, the writes they carried and the writer's
/// time spent writing (nothing on PostgreSQL).
fn render_group_commit(store: &Store) -> String {
    let mut out = String::new();
    let Some(counts) = store.group_commit_counts() else {
        return out;
    };
    single(
        &mut out,
        "syncdesk_sqlite_commits_total",
        "counter",
        "Transactions SQLite's group commit made in this process.",
        counts.commits,
    );
    single(
        &mut out,
        "syncdesk_sqlite_group_writes_total",
        "counter",
        "Writes (webhooks, claims, completions) those transactions carried; divided by the commits, the batch size.",
        counts.writes,
    );
    single(
        &mut out,
        "syncdesk_sqlite_writer_busy_seconds_total",
        "counter",
        "Seconds SQLite's one writer spent writing in this process; its rate is the share of the time it was busy, waiting for a core included (near 1 with dozens of writes per commit while the CPUs are not full, it is the limit: scale to PostgreSQL).",
        counts.busy.as_secs_f64(),
    );
    out
}

/// PostgreSQL's hot writes written together in this process: the statements, and the writes
/// they carried — the workers' synced deliveries and the orders' webhooks (nothing on SQLite).
fn render_pg_batches(store: &Store) -> String {
    let mut out = String::new();
    if let Some((statements, completions)) = store.completion_batch_counts() {
        single(
            &mut out,
            "syncdesk_pg_completion_statements_total",
            "counter",
            "Statements that recorded the workers' synced deliveries on PostgreSQL in this process.",
            statements,
        );
        single(
            &mut out,
            "syncdesk_pg_completions_total",
            "counter",
            "Synced deliveries those statements recorded; divided by the statements, the batch size.",
            completions,
        );
    }
    if let Some((calls, webhooks)) = store.ingest_batch_counts() {
        single(
            &mut out,
            "syncdesk_pg_ingest_calls_total",
            "counter",
            "Calls that recorded orders' webhooks on PostgreSQL in this process.",
            calls,
        );
        single(
            &mut out,
            "syncdesk_pg_ingested_total",
            "counter",
            "Orders' webhooks those calls recorded; divided by the calls, the batch size.",
            webhooks,
        );
    }
    out
}

/// A label value, escaped as the exposition format asks.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header_lines(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A metric without labels: its header lines and its one value.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header_lines(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// The counts in Prometheus text format.
pub fn render(c: &MetricCounts) -> String {
    let mut out = String::new();

    header_lines(
        &mut out,
        "syncdesk_queue_depth",
        "gauge",
        "Sync tasks not done yet (waiting for a worker, a retry or an operator), by destination and state.",
    );
    for dest in DESTINATIONS {
        for state in QUEUE_STATES {
            let n = c
                .queue_depth
                .iter()
                .find(|(d, s, _)| d == dest && s == state)
                .map_or(0, |(_, _, n)| *n);
            let _ = writeln!(
                out,
                "syncdesk_queue_depth{{destination=\"{dest}\",state=\"{state}\"}} {n}"
            );
        }
    }

    header_lines(
        &mut out,
        "syncdesk_exceptions_open",
        "gauge",
        "Open (or snoozed) exceptions by code.",
    );
    // Every code, 0 when none is open, so that a series reads 0 rather than vanishing when its
    // last exception is resolved (and any code stored that this build does not know, too).
    let mut codes: std::collections::BTreeMap<&str, i64> = crate::engine::exception::code::ALL
        .into_iter()
        .map(|code| (code, 0))
        .collect();
    codes.extend(
        c.exceptions_open
            .iter()
            .map(|(code, n)| (code.as_str(), *n)),
    );
    for (code, n) in codes {
        let _ = writeln!(
            out,
            "syncdesk_exceptions_open{{code=\"{}\"}} {n}",
            label(code)
        );
    }

    header_lines(
        &mut out,
        "syncdesk_attempts_total",
        "counter",
        "Delivery attempts by destination and outcome.",
    );
    for (dest, outcome, n) in &c.attempts {
        let _ = writeln!(
            out,
            "syncdesk_attempts_total{{destination=\"{}\",outcome=\"{}\"}} {n}",
            label(dest),
            label(outcome)
        );
    }

    header_lines(
        &mut out,
        "syncdesk_sync_lag_seconds",
        "histogram",
        "From a version being armed to its acknowledgement by the destination.",
    );
    // One histogram per destination (a slow ERP must not hide in a fast CRM's median), each
    // written even before it has synced anything.
    let mut histograms: std::collections::BTreeMap<&str, LagHistogram> = DESTINATIONS
        .iter()
        .map(|d| {
            let empty = LagHistogram {
                destination: d.to_string(),
                buckets: vec![0; LAG_BUCKETS_SECONDS.len()],
                ..LagHistogram::default()
            };
            (*d, empty)
        })
        .collect();
    histograms.extend(c.lags.iter().map(|h| (h.destination.as_str(), h.clone())));
    for h in histograms.values() {
        let dest = label(&h.destination);
        for (le, n) in LAG_BUCKETS_SECONDS.iter().zip(&h.buckets) {
            let _ = writeln!(
                out,
                "syncdesk_sync_lag_seconds_bucket{{destination=\"{dest}\",le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "syncdesk_sync_lag_seconds_bucket{{destination=\"{dest}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "syncdesk_sync_lag_seconds_sum{{destination=\"{dest}\"}} {}",
            h.sum_ms as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "syncdesk_sync_lag_seconds_count{{destination=\"{dest}\"}} {}",
            h.count
        );
    }

    header_lines(
        &mut out,
        "syncdesk_webhooks_total",
        "counter",
        "Webhook deliveries received, by outcome.",
    );
    for (outcome, n) in &c.webhooks {
        let _ = writeln!(
            out,
            "syncdesk_webhooks_total{{outcome=\"{}\"}} {n}",
            label(outcome)
        );
    }

    header_lines(
        &mut out,
        "syncdesk_destination_paused",
        "gauge",
        "1 while a destination is paused for rejected credentials.",
    );
    for (dest, paused) in &c.paused {
        let _ = writeln!(
            out,
            "syncdesk_destination_paused{{destination=\"{}\"}} {}",
            label(dest),
            u8::from(*paused)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_store_still_reports_every_family() {
        let text = render(&MetricCounts::default());
        for family in [
            "syncdesk_queue_depth{destination=\"crm\",state=\"pending\"} 0",
            "# TYPE syncdesk_exceptions_open gauge",
            "# TYPE syncdesk_attempts_total counter",
            "syncdesk_sync_lag_seconds_bucket{destination=\"crm\",le=\"0.05\"} 0",
            "syncdesk_sync_lag_seconds_bucket{destination=\"erp\",le=\"+Inf\"} 0",
            "syncdesk_sync_lag_seconds_count{destination=\"erp\"} 0",
            "syncdesk_exceptions_open{code=\"dead_letter\"} 0",
            "syncdesk_exceptions_open{code=\"missing_sku_mapping\"} 0",
            "# TYPE syncdesk_webhooks_total counter",
        ] {
            assert!(text.contains(family), "missing {family} in\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
