//! Turns triage requests, as the queue screen and the JSON API send them, into the store's
//! scopes and actions, and their outcome into the sentence people read. Both surfaces call
//! these, so a filter or an action means the same everywhere.

use app::model::{ExceptionQuery, TriageOutcome, TriageRequest, TriageTarget};
use chrono::{TimeDelta, Utc};

use crate::store::{Assignee, ExceptionScope, TriageAction, TriageReport};

/// The longest snooze, in hours (90 days).
pub const MAX_SNOOZE_HOURS: i64 = 90 * 24;
/// The most exceptions one selection may name.
pub const MAX_SELECTION: usize = 1000;

/// An empty or blank value does not filter.
pub fn given(value: &Option<String>) -> Option<String> {
    value
        .as_ref()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `me`, `none` or a user id; `me` needs a signed-in person.
fn assignee(value: &str, me: Option<i64>) -> Result<Assignee, String> {
    match value.trim() {
        "none" | "nobody" => Ok(Assignee::Nobody),
        "me" => me
            .map(Assignee::User)
            .ok_or_else(|| "\"me\" needs a signed-in person; give a user id.".to_string()),
        other => other
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(Assignee::User)
            .ok_or_else(|| format!("assignee must be me, none or a user id (got {other:?}).")),
    }
}

/// The scope a filter describes. `me` is the signed-in person, if any.
pub fn scope(query: &ExceptionQuery, me: Option<i64>) -> Result<ExceptionScope, String> {
    let status = match given(&query.status).as_deref() {
        None | Some("open") => Some("open".to_string()),
        Some("all") => None,
        Some(s @ ("snoozed" | "resolved" | "skipped")) => Some(s.to_string()),
        Some(other) => {
            return Err(format!(
                "status must be open, snoozed, resolved, skipped or all (got {other:?})."
            ));
        }
    };
    let destination = given(&query.destination);
    if let Some(d) = &destination
        && !["crm", "erp", "store"].contains(&d.as_str())
    {
        return Err(format!(
            "destination must be crm, erp or store (got {d:?})."
        ));
    }
    let created_before = match query.older_than_minutes {
        None => None,
        Some(m) if (0..=60 * 24 * 365).contains(&m) => Some(Utc::now() - TimeDelta::minutes(m)),
        Some(_) => return Err("older_than_minutes must be between 0 and 525600.".into()),
    };
    let search = given(&query.q);
    if search.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err("Search for at most 200 characters.".into());
    }
    if search.as_ref().is_some_and(|q| q.contains('\0')) {
        return Err("The search holds a NUL character (%00); type it again without it.".into());
    }
    Ok(ExceptionScope {
        ids: None,
        fingerprint: given(&query.fingerprint),
        code: given(&query.code),
        destination,
        status,
        assignee: given(&query.assignee)
            .map(|a| assignee(&a, me))
            .transpose()?,
        created_before,
        search,
        order: None,
    })
}

/// The scope of the grouped queue: like [`scope`], but without a status it covers what still
/// needs attention, open and snoozed (the store's groups read that as "no status").
pub fn group_scope(query: &ExceptionQuery, me: Option<i64>) -> Result<ExceptionScope, String> {
    let mut scope = scope(query, me)?;
    if given(&query.status).is_none() {
        scope.status = None;
    }
    Ok(scope)
}

/// The scope a triage target covers.
pub fn target_scope(target: &TriageTarget, me: Option<i64>) -> Result<ExceptionScope, String> {
    match target {
        TriageTarget::Ids { ids } => {
            if ids.is_empty() {
                return Err("Select at least one exception.".into());
            }
            if ids.len() > MAX_SELECTION {
                return Err(format!(
                    "Select at most {MAX_SELECTION} exceptions, or act on the whole filter."
                ));
            }
            Ok(ExceptionScope {
                ids: Some(ids.clone()),
                ..ExceptionScope::default()
            })
        }
        TriageTarget::Group { fingerprint } if fingerprint.trim().is_empty() => {
            Err("Name the group's cause.".into())
        }
        TriageTarget::Group { fingerprint } => Ok(ExceptionScope {
            fingerprint: Some(fingerprint.trim().to_string()),
            ..ExceptionScope::default()
        }),
        TriageTarget::Filter { query } => scope(query, me),
    }
}

/// The store action a request asks for.
pub fn action(request: &TriageRequest, me: Option<i64>) -> Result<TriageAction, String> {
    Ok(match request {
        TriageRequest::Retry => TriageAction::Retry,
        TriageRequest::Skip { reason } => TriageAction::Skip {
            reason: reason.clone(),
        },
        TriageRequest::Resolve { note } => TriageAction::Resolve { note: note.clone() },
        TriageRequest::Assign { assignee: who } => TriageAction::Assign {
            user_id: match assignee(who, me)? {
                Assignee::Nobody => None,
                Assignee::User(id) => Some(id),
            },
        },
        TriageRequest::Snooze { hours } => {
            if !(1..=MAX_SNOOZE_HOURS).contains(hours) {
                return Err(format!(
                    "Snooze for 1 to {MAX_SNOOZE_HOURS} hours (90 days)."
                ));
            }
            TriageAction::Snooze {
                until: Utc::now() + TimeDelta::hours(*hours),
            }
        }
    })
}

fn orders(n: u64) -> String {
    if n == 1 {
        "1 order".to_string()
    } else {
        format!("{n} orders")
    }
}

fn exceptions(n: u64) -> String {
    if n == 1 {
        "1 exception".to_string()
    } else {
        format!("{n} exceptions")
    }
}

/// The outcome, with the sentence the screen and the API show.
pub fn outcome(request: &TriageRequest, report: &TriageReport) -> TriageOutcome {
    let will = report.dry_run;
    let mut parts = Vec::new();
    if report.matched == 0 {
        parts.push("Nothing to do: no open exception matches.".to_string());
    } else {
        match request {
            TriageRequest::Retry => {
                if report.queued > 0 || !will {
                    parts.push(if will {
                        format!("{} will be sent again now.", orders(report.queued))
                    } else {
                        format!("{} queued to be sent again now.", orders(report.queued))
                    });
                }
                if report.already_applied > 0 {
                    parts.push(format!(
                        "{} already at the destination, so nothing is sent{}.",
                        orders(report.already_applied),
                        if will {
                            ""
                        } else {
                            " and the exception is closed"
                        }
                    ));
                }
            }
            TriageRequest::Skip { .. } => parts.push(if will {
                format!("{} will be skipped.", orders(report.changed))
            } else {
                format!("{} skipped.", orders(report.changed))
            }),
            TriageRequest::Resolve { .. } => parts.push(if will {
                format!(
                    "{} will be marked as done by hand.",
                    exceptions(report.changed)
                )
            } else {
                format!("{} marked as done by hand.", exceptions(report.changed))
            }),
            TriageRequest::Assign { .. } => parts.push(if will {
                format!("{} will be assigned.", exceptions(report.changed))
            } else {
                format!("{} assigned.", exceptions(report.changed))
            }),
            TriageRequest::Snooze { .. } => parts.push(if will {
                format!("{} will be snoozed.", exceptions(report.changed))
            } else {
                format!("{} snoozed.", exceptions(report.changed))
            }),
        }
        if report.in_flight > 0 {
            parts.push(format!(
                "{} being delivered right now, left alone.",
                orders(report.in_flight)
            ));
        }
        if report.from_store > 0 && matches!(request, TriageRequest::Retry) {
            parts.push(format!(
                "{} the store sent in a form SyncDesk could not read: there is nothing to send \
                 again; resync {} from the store with the row's button.",
                orders(report.from_store),
                if report.from_store == 1 { "it" } else { "each" }
            ));
        }
        if report.destination_wide > 0 {
            parts.push(
                "A destination whose credentials were rejected is left as it is: it resumes when \
                 SyncDesk restarts with renewed ones, or when an admin resumes it from its cause's row."
                    .to_string(),
            );
        }
    }
    TriageOutcome {
        matched: report.matched,
        queued: report.queued,
        already_applied: report.already_applied,
        in_flight: report.in_flight,
        destination_wide: report.destination_wide,
        from_store: report.from_store,
        changed: report.changed,
        dry_run: report.dry_run,
        summary: parts.join(" "),
    }
}
