//! An order's history as the order page shows it: webhooks, attempts, exceptions and payload
//! edits merged into one list, newest first.

use app::model::TimelineEntry;

use crate::store::{PayloadEdit, Timeline};

/// The order's history as one list, newest first.
pub(super) fn timeline_entries(timeline: Timeline, edits: &[PayloadEdit]) -> Vec<TimelineEntry> {
    let time = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string();
    let mut entries: Vec<(chrono::DateTime<chrono::Utc>, TimelineEntry)> = Vec::new();
    for e in edits {
        let fields: Vec<String> = crate::engine::edit::diff(&e.original.0, &e.payload.0)
            .into_iter()
            .map(|c| c.path)
            .collect();
        entries.push((
            e.created_at,
            TimelineEntry {
                at: time(e.created_at),
                source: e.destination.clone(),
                kind: "edit".into(),
                label: "payload edited".into(),
                tone: "warn".into(),
                detail: format!(
                    "version {}, by {}: {} (computed payload kept)",
                    e.version,
                    e.created_by,
                    fields.join(", ")
                ),
            },
        ));
    }
    for e in timeline.events {
        let tone = match e.outcome.as_str() {
            "applied" | "accepted" => "ok",
            "duplicate" | "superseded" => "muted",
            _ => "warn",
        };
        let detail = match (&e.note, e.order_updated_at) {
            (Some(note), _) => format!("{}: {note}", e.outcome),
            (None, Some(at)) => format!("{} (store state of {})", e.outcome, time(at)),
            (None, None) => e.outcome.clone(),
        };
        entries.push((
            e.received_at,
            TimelineEntry {
                at: time(e.received_at),
                source: "store".into(),
                kind: "webhook".into(),
                label: e.topic,
                tone: tone.into(),
                detail,
            },
        ));
    }
    for a in timeline.attempts {
        let tone = match a.outcome.as_str() {
            "synced" | "manual" => "ok",
            "transient" => "warn",
            _ => "bad",
        };
        let mut detail = format!(
            "version {}, attempt {}, {} ms",
            a.version, a.attempt, a.duration_ms
        );
        if let Some(status) = a.status {
            detail.push_str(&format!(", HTTP {status}"));
        }
        if let Some(message) = &a.message {
            detail.push_str(&format!(" — {message}"));
        }
        if let Some(id) = &a.request_id {
            detail.push_str(&format!(" (request {id})"));
        }
        entries.push((
            a.started_at,
            TimelineEntry {
                at: time(a.started_at),
                source: a.destination,
                kind: "attempt".into(),
                label: a.outcome.replace('_', " "),
                tone: tone.into(),
                detail,
            },
        ));
    }
    for x in timeline.exceptions {
        entries.push((
            x.created_at,
            TimelineEntry {
                at: time(x.created_at),
                source: x.destination.clone(),
                kind: "exception".into(),
                label: "exception opened".into(),
                tone: "bad".into(),
                detail: x.message.clone(),
            },
        ));
        if let Some(at) = x.resolved_at {
            entries.push((
                at,
                TimelineEntry {
                    at: time(at),
                    source: x.destination,
                    kind: "exception".into(),
                    label: format!("exception {}", x.status),
                    tone: "muted".into(),
                    detail: format!(
                        "{} — by {}",
                        x.resolution.unwrap_or_default(),
                        x.resolved_by.unwrap_or_default()
                    ),
                },
            ));
        }
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    entries.into_iter().map(|(_, e)| e).collect()
}
