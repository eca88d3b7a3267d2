//! Supervised tokio tasks.
//!
//! - [`supervise`] runs a restartable task: when it returns an error or panics, the
//!   failure is recorded on its [`Component`] and the task starts again after the
//!   [`Backoff`] delay, until the node stops.
//! - [`watch_fatal`] watches a component that cannot be restarted in place: when it dies,
//!   the failure is recorded and [`Fatal`] is raised, so the node stops with an error and
//!   its process supervisor starts it afresh (state is rebuilt from disk and peers).

use crate::backoff::{Backoff, Restarts};
use crate::component::{Component, ComponentStatus};
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How a supervised task's run ended.
pub trait TaskOutcome {
    /// `Err` with a message when the run failed.
    fn into_outcome(self) -> Result<(), String>;
}

impl TaskOutcome for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display> TaskOutcome for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// Runs `start()` as a task tracked by `tracker`, restarting it with `backoff` when it
/// fails or panics, until `stop` is cancelled. A run that ends cleanly ends supervision
/// (the task's own stop signal ended it, or it has no more work).
pub fn supervise<F, Fut>(
    tracker: &TaskTracker,
    component: Component,
    backoff: Backoff,
    stop: CancellationToken,
    mut start: F,
) where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: TaskOutcome + Send + 'static,
{
    tracker.spawn(async move {
        let mut restarts = Restarts::new(backoff);
        loop {
            component.set_status(ComponentStatus::Running);
            let (message, panic) = match tokio::spawn(start()).await {
                Ok(outcome) => match outcome.into_outcome() {
                    Ok(()) => break,
                    Err(message) => (message, false),
                },
                Err(e) if e.is_panic() => (panic_message(e.into_panic()), true),
                Err(e) => (e.to_string(), false),
            };
            component.failed(&message, panic);
            if stop.is_cancelled() {
                break;
            }
            let (n, delay) = restarts.failed(());
            tracing::warn!(
                component = component.name(),
                error = %message,
                panic,
                restart = n,
                ?delay,
                "component failed; restarting it"
            );
            component.set_status(ComponentStatus::Restarting);
            tokio::select! {
                () = tokio::time::sleep(delay) => component.restarted(),
                () = stop.cancelled() => break,
            }
        }
        component.set_status(ComponentStatus::Stopped);
    });
}

/// Watches a component that cannot be restarted in place: `died` resolves with the reason
/// when it has died. Unless the node is stopping by then, the failure is recorded and
/// `fatal` raised.
pub fn watch_fatal<Fut>(
    tracker: &TaskTracker,
    component: Component,
    stop: CancellationToken,
    fatal: Fatal,
    died: Fut,
) where
    Fut: Future<Output = String> + Send + 'static,
{
    tracker.spawn(async move {
        tokio::select! {
            reason = died => {
                if stop.is_cancelled() {
                    component.set_status(ComponentStatus::Stopped);
                    return;
                }
                tracing::error!(component = component.name(), %reason, "component died; the node stops");
                component.failed(&reason, false);
                component.set_status(ComponentStatus::Failed);
                fatal.raise(component.name(), &reason);
            }
            () = stop.cancelled() => component.set_status(ComponentStatus::Stopped),
        }
    });
}

/// Raised when a component the node cannot do without has died.
#[derive(Debug, Clone, Default)]
pub struct Fatal {
    token: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Fatal {
    /// Not raised.
    pub fn new() -> Fatal {
        Fatal::default()
    }

    /// Raises it, saying which component died and why (the first reason is kept).
    pub fn raise(&self, component: &str, reason: &str) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = Some(format!("{component}: {reason}"));
        }
        drop(r);
        self.token.cancel();
    }

    /// Resolves once raised, with the reason.
    pub async fn raised(&self) -> String {
        self.token.cancelled().await;
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default()
    }
}

/// The text of a panic's payload.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    format!("panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::ComponentKind;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    const FAST: Backoff = Backoff::new(Duration::from_millis(1), 2);

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..2000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn a_failing_or_panicking_task_is_restarted_until_it_ends_cleanly() {
        let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
        let c = Component::new("t", ComponentKind::Task);
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        supervise(&tracker, c.clone(), FAST, stop.clone(), move || {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Err("first run fails".to_owned()),
                    1 => panic!("second run panics"),
                    _ => Ok(()),
                }
            }
        });
        tracker.close();
        tracker.wait().await;
        let s = c.state();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(
            (s.restarts, s.panics, s.status),
            (2, 1, ComponentStatus::Stopped)
        );
        let e = s.last_error.unwrap_or_else(|| panic!("no last error"));
        assert_eq!(e.message, "panicked: second run panics");
    }

    #[tokio::test]
    async fn a_stop_ends_the_backoff_and_the_supervision() {
        let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
        let c = Component::new("t", ComponentKind::Task);
        let slow = Backoff::new(Duration::from_secs(3600), 0);
        supervise(&tracker, c.clone(), slow, stop.clone(), || async {
            Err::<(), _>("always")
        });
        wait_for("the restart wait", || {
            c.status() == ComponentStatus::Restarting
        })
        .await;
        stop.cancel();
        tracker.close();
        tracker.wait().await;
        assert_eq!((c.status(), c.restarts()), (ComponentStatus::Stopped, 0));
    }

    #[tokio::test]
    async fn a_dead_fatal_component_raises_fatal_unless_the_node_stops() {
        let (tracker, stop, fatal) = (TaskTracker::new(), CancellationToken::new(), Fatal::new());
        let c = Component::new("raft", ComponentKind::Fatal);
        watch_fatal(&tracker, c.clone(), stop.clone(), fatal.clone(), async {
            "storage error".to_owned()
        });
        assert_eq!(fatal.raised().await, "raft: storage error");
        assert_eq!(c.status(), ComponentStatus::Failed);

        let quiet = Fatal::new();
        let c2 = Component::new("membership", ComponentKind::Fatal);
        let stopped = CancellationToken::new();
        stopped.cancel();
        watch_fatal(&tracker, c2.clone(), stopped, quiet.clone(), async {
            "agent ended".to_owned()
        });
        tracker.close();
        tracker.wait().await;
        assert_eq!(c2.status(), ComponentStatus::Stopped);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), quiet.raised())
                .await
                .is_err()
        );
    }
}
