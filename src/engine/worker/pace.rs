//! When a worker claims, and how it waits in between: claims big enough to be worth their
//! cost, never put off for long, and none that would find nothing.

use std::time::Duration;

/// The longest a worker with a free delivery slot waits for half of them to be free before it
/// claims anyway: deliveries held up by a slow destination must not hold up the others'.
pub(super) const CLAIM_WAIT: Duration = Duration::from_millis(50);

/// Whether a worker claims now, with `free` of its `concurrency` delivery slots free and
/// `since_claim` since its last claim: with any free slot when none is in flight, else once
/// half its slots are free (at most a batch) or [`CLAIM_WAIT`] has passed.
pub(super) fn claim_now(free: i64, concurrency: usize, batch: i64, since_claim: Duration) -> bool {
    let concurrency = concurrency as i64;
    let enough = (concurrency / 2).clamp(1, batch.max(1));
    free > 0 && (free >= concurrency || free >= enough || since_claim >= CLAIM_WAIT)
}

/// How long the oldest task a full claim took may have waited, since it was due, before the
/// workers count as behind (see [`behind`]).
pub(super) const BEHIND: Duration = Duration::from_secs(1);

/// Whether a claim says the workers have fallen behind, so that new orders' tasks are written
/// pending behind the work waiting in the database rather than handed off (see
/// `store::handoff`): it came back full (`found`), whatever its size, and the oldest task it
/// took had waited longer than [`BEHIND`] since it was due. A full claim of fresh tasks is the
/// ingest outrunning the handoff's room for a moment: stopping the handoff for it made every
/// later order's tasks pending, the claims full and the deliveries dearer, for the rest of an
/// unpaced run. Every claim says again, so the last one decides: one that drained the queue or
/// took only fresh work lets the handoff go on.
pub(super) fn behind(found: Found, oldest_wait: Duration) -> bool {
    found == Found::All && oldest_wait > BEHIND
}

/// How a worker waits before it looks at the queue again (it also wakes on new work and on
/// shutdown).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Wait {
    /// The longest it waits.
    pub(super) pause: Duration,
    /// Whether a delivery that finishes ends the wait.
    pub(super) on_finished_delivery: bool,
}

/// What a worker's last claim found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// All it asked for: more may be due.
    All,
    /// Fewer than it asked for: the queue was drained.
    Fewer,
    /// Nothing: the queue was empty.
    Nothing,
}

/// The wait after a claim that found `found` (`busy`: with deliveries in flight), the one before
/// it having found `previous` and been followed by `current`: `idle_poll` after the first that
/// finds nothing, twice the last wait after each further one of an idle worker (up to
/// `idle_poll_max`), and `idle_poll` again once one finds work or deliveries are in flight.
pub(super) fn idle_wait(
    found: Found,
    previous: Found,
    busy: bool,
    current: Duration,
    config: &super::WorkerConfig,
) -> Duration {
    match (found, previous) {
        (Found::Nothing, Found::Nothing) if !busy => (current * 2)
            .min(config.idle_poll_max)
            .max(config.idle_poll),
        _ => config.idle_poll,
    }
}

/// Whether a claim is due whatever woke the worker: at once after one that got all it asked
/// for, [`CLAIM_WAIT`] after one that got fewer, `idle_poll` after one that got nothing.
pub(super) fn claim_due(last: Found, since_claim: Duration, idle_poll: Duration) -> bool {
    match last {
        Found::All => true,
        Found::Fewer => since_claim >= CLAIM_WAIT,
        Found::Nothing => since_claim >= idle_poll,
    }
}

/// After a turn of the loop (`claim`: it claimed; `idle`: it got nothing this turn; `last`: what
/// its last claim, this turn's or an earlier one, found; `free`: slots free before the claim;
/// `since_claim`: time since the last claim), how the worker waits, or `None` to go on at once:
/// - its claim got all it asked for: at once, more may be due;
/// - every slot is busy: until one delivery finishes;
/// - it waits for slots to free up: until one delivery finishes or [`CLAIM_WAIT`] is over;
/// - its last claim drained the queue and deliveries are in flight: for new work, or until
///   [`CLAIM_WAIT`] after that claim (`idle_poll` when it found nothing at all) — not for each
///   delivery that finishes, which would claim again and find little or nothing, and not from
///   each handoff, which would put the claim off for as long as new orders keep coming (new
///   orders' tasks handed off need no claim, and other new work wakes the worker);
/// - nothing in flight and nothing due: for new work or `idle_poll`.
pub(super) fn wait_after(
    claim: bool,
    idle: bool,
    last: Found,
    in_flight: bool,
    free: i64,
    since_claim: Duration,
    idle_poll: Duration,
) -> Option<Wait> {
    let drained = last != Found::All;
    if !idle && !drained {
        return None;
    }
    if free <= 0 && in_flight {
        return Some(Wait {
            pause: idle_poll,
            on_finished_delivery: true,
        });
    }
    let pause = match (drained, claim, in_flight) {
        (true, _, _) if last == Found::Nothing => idle_poll.saturating_sub(since_claim),
        (true, _, true) | (_, false, _) => CLAIM_WAIT.saturating_sub(since_claim),
        _ => idle_poll,
    };
    Some(Wait {
        pause,
        on_finished_delivery: in_flight && !drained,
    })
}

#[cfg(test)]
mod tests {
    use super::{
        BEHIND, CLAIM_WAIT, Found, Wait, behind, claim_due, claim_now, idle_wait, wait_after,
    };
    use crate::engine::worker::WorkerConfig;
    use std::time::Duration;

    #[test]
    fn only_a_full_claim_of_work_that_has_waited_says_the_workers_are_behind() {
        let waited = BEHIND + Duration::from_millis(1);
        assert!(behind(Found::All, waited));
        assert!(!behind(Found::All, BEHIND), "fresh tasks");
        assert!(!behind(Found::All, Duration::ZERO), "fresh tasks");
        assert!(!behind(Found::Fewer, waited), "the queue was drained");
        assert!(!behind(Found::Nothing, waited));
    }

    #[test]
    fn an_idle_worker_polls_less_and_less_often_and_at_once_again_after_work() {
        let config = WorkerConfig::default();
        let (poll, max) = (config.idle_poll, config.idle_poll_max);
        let mut wait = poll;
        let mut last = Found::All;
        let mut waits = Vec::new();
        for _ in 0..6 {
            wait = idle_wait(Found::Nothing, last, false, wait, &config);
            last = Found::Nothing;
            waits.push(wait.as_millis());
        }
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(max.as_millis(), 1000);
        // Work found: back to the first wait, and the next empty claim waits that long.
        assert_eq!(idle_wait(Found::Fewer, last, false, wait, &config), poll);
        assert_eq!(
            idle_wait(Found::Nothing, Found::Fewer, false, poll, &config),
            poll
        );
        assert_eq!(
            idle_wait(Found::All, Found::Nothing, false, max, &config),
            poll
        );
        // A worker with deliveries in flight is not idle: its claims keep their pace.
        assert_eq!(
            idle_wait(Found::Nothing, Found::Nothing, true, max, &config),
            poll
        );
    }

    #[test]
    fn a_claim_that_empties_the_queue_waits_for_new_work_not_for_each_finished_delivery() {
        let (poll, just) = (Duration::from_millis(100), Duration::from_millis(1));
        // Got all it asked for: claim again at once.
        assert_eq!(
            wait_after(true, false, Found::All, true, 20, just, poll),
            None
        );
        // Got fewer (the queue is drained) with deliveries in flight: new work or CLAIM_WAIT.
        assert_eq!(
            wait_after(true, false, Found::Fewer, true, 40, just, poll),
            Some(Wait {
                pause: CLAIM_WAIT - just,
                on_finished_delivery: false
            })
        );
        // Got nothing with deliveries in flight: new work or the idle poll.
        assert_eq!(
            wait_after(true, true, Found::Nothing, true, 40, just, poll),
            Some(Wait {
                pause: poll - just,
                on_finished_delivery: false
            })
        );
        // Waiting for half the slots: a finished delivery is worth a look.
        assert_eq!(
            wait_after(false, true, Found::All, true, 5, just, poll),
            Some(Wait {
                pause: CLAIM_WAIT - just,
                on_finished_delivery: true
            })
        );
        // Every slot busy: a finished delivery, whatever the time since the last claim.
        assert_eq!(
            wait_after(false, true, Found::All, true, 0, CLAIM_WAIT * 3, poll),
            Some(Wait {
                pause: poll,
                on_finished_delivery: true
            })
        );
        // Nothing in flight, nothing due: the idle poll.
        assert_eq!(
            wait_after(true, true, Found::Nothing, false, 64, Duration::ZERO, poll),
            Some(Wait {
                pause: poll,
                on_finished_delivery: false
            })
        );
    }

    #[test]
    fn handed_off_tasks_do_not_put_off_the_next_claim() {
        let poll = Duration::from_millis(100);
        // Woken by a handoff 30 ms after a claim that drained the queue: the next claim is
        // still due CLAIM_WAIT after that one (the idle poll after one that found nothing),
        // not after this wake.
        let since = Duration::from_millis(30);
        assert_eq!(
            wait_after(false, true, Found::Fewer, true, 40, since, poll),
            Some(Wait {
                pause: CLAIM_WAIT - since,
                on_finished_delivery: false
            })
        );
        assert_eq!(
            wait_after(false, true, Found::Nothing, true, 40, since, poll),
            Some(Wait {
                pause: poll - since,
                on_finished_delivery: false
            })
        );
        // Its time has come: no wait, and the next turn claims.
        assert_eq!(
            wait_after(false, true, Found::Nothing, true, 40, poll * 2, poll),
            Some(Wait {
                pause: Duration::ZERO,
                on_finished_delivery: false
            })
        );
        assert!(claim_now(40, 64, 64, poll * 2));
        // And it claims then even if a handoff, not the timer, is what woke it.
        assert!(!claim_due(Found::Nothing, since, poll));
        assert!(!claim_due(Found::Fewer, since, poll));
        assert!(claim_due(Found::Fewer, CLAIM_WAIT, poll));
        assert!(claim_due(Found::Nothing, poll, poll));
        assert!(claim_due(Found::All, Duration::ZERO, poll));
    }

    #[test]
    fn claims_wait_for_half_the_deliveries_or_a_short_while() {
        let just = Duration::from_millis(1);
        // Nothing in flight: claim whatever is due, even one task.
        assert!(claim_now(32, 32, 64, just));
        // Deliveries in flight: claim once half of them have finished...
        assert!(!claim_now(3, 32, 64, just));
        assert!(!claim_now(15, 32, 64, just));
        assert!(claim_now(16, 32, 64, just));
        // ...or once the wait is over, so a slow destination holds up no one else.
        assert!(claim_now(1, 32, 64, CLAIM_WAIT));
        // Never with no free slot; never waiting for more than a batch.
        assert!(!claim_now(0, 32, 64, CLAIM_WAIT * 10));
        assert!(claim_now(4, 32, 4, just));
        assert!(claim_now(1, 2, 64, just));
    }
}
