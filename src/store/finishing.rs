//! A future that is run to its end whatever becomes of its caller.

use std::pin::Pin;
use std::task::{Context, Poll};

/// A future that is run to its end even if its caller goes away: dropped unfinished, it is
/// spawned to finish on a task of its own (SQLite's `Writer::write_then`).
pub(crate) struct Finishing<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// `None` once it has finished.
    future: Option<Pin<Box<F>>>,
}

impl<F> Finishing<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// `future`, to be awaited.
    pub(crate) fn new(future: F) -> Finishing<F> {
        Finishing {
            future: Some(Box::pin(future)),
        }
    }
}

impl<F> Future for Finishing<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Polled again after it finished: it never resolves twice. Out of its place while
        // polled, so that one that panics is not spawned to be polled again when dropped.
        let Some(mut future) = self.future.take() else {
            return Poll::Pending;
        };
        let polled = future.as_mut().poll(cx);
        if polled.is_pending() {
            self.future = Some(future);
        }
        polled
    }
}

impl<F> Drop for Finishing<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        // Without a runtime, or on one that is shutting down (which drops what is spawned),
        // it is not finished, and what it holds is dropped: after a write, the tasks it leased
        // are then left to the claims' rescue, as after a crash.
        if let Some(future) = self.future.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(future);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_without_a_runtime_it_lets_go_of_what_it_holds() {
        // What the future holds (a reservation of the handoff's room, say) is dropped, not
        // kept: with nothing to run it on, it is not run.
        struct Held(std::sync::mpsc::Sender<()>);
        impl Drop for Held {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let (held, dropped) = std::sync::mpsc::channel();
        let held = Held(held);
        let unfinished = Finishing::new(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        drop(unfinished);
        assert!(dropped.try_recv().is_ok());
    }
}
