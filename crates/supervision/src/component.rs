//! A component's observable state: what it is, whether it runs, how often it was
//! restarted, how it last failed, and the gauges it exports. The live [`Component`] handle
//! is updated by whoever supervises the component; [`Component::state`] takes a snapshot
//! as the serializable [`ComponentState`].

use serde::{Deserialize, Serialize};
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest error message kept: enough to say what failed, bounded in memory.
pub const MAX_ERROR_CHARS: usize = 300;

/// How a component is supervised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// A tokio task restarted with backoff when it fails or panics.
    Task,
    /// An actor supervisor restarting its children (bucket shards, evaluations) with
    /// backoff.
    Supervisor,
    /// A component whose state cannot be rebuilt in place (Raft's core, the gossip
    /// agent): when it dies, the node stops with an error and its process supervisor
    /// (systemd, Kubernetes) starts it again.
    Fatal,
}

/// Whether a component runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    /// Started, and not failed since.
    Running,
    /// Failed; waiting out its backoff before it starts again.
    Restarting,
    /// Ended because the node stops (or the component finished its work).
    Stopped,
    /// Died and will not start again in this process.
    Failed,
}

impl ComponentStatus {
    fn from_u8(v: u8) -> ComponentStatus {
        match v {
            0 => ComponentStatus::Running,
            1 => ComponentStatus::Restarting,
            2 => ComponentStatus::Stopped,
            _ => ComponentStatus::Failed,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            ComponentStatus::Running => 0,
            ComponentStatus::Restarting => 1,
            ComponentStatus::Stopped => 2,
            ComponentStatus::Failed => 3,
        }
    }
}

/// The last failure of a component (or of one of its children).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// What went wrong, at most [`MAX_ERROR_CHARS`] characters.
    pub message: String,
    /// Whether it was a panic.
    pub panic: bool,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
}

/// Gauges a component exports beside its status; `None` where they do not apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gauges {
    /// Work waiting for the component (events, batches in flight, entries to apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<u64>,
    /// Rate-limit buckets held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<u64>,
    /// Evaluations running on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluations_running: Option<u64>,
    /// Child actors alive (bucket shards, tenant actors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<u64>,
}

/// A snapshot of a component, as `/v1/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentState {
    /// Its name (`raft`, `membership`, `buckets`, ...).
    pub name: String,
    /// How it is supervised.
    pub kind: ComponentKind,
    /// Whether it runs.
    pub status: ComponentStatus,
    /// Restarts of it (or of its children) since the node started.
    pub restarts: u64,
    /// Of the failures behind those, the panics.
    pub panics: u64,
    /// Its last failure, if any.
    pub last_error: Option<LastError>,
    /// Its gauges.
    #[serde(flatten)]
    pub gauges: Gauges,
}

type GaugeFn = Box<dyn Fn() -> Gauges + Send + Sync>;

struct Inner {
    name: &'static str,
    kind: ComponentKind,
    status: AtomicU8,
    restarts: AtomicU64,
    panics: AtomicU64,
    last_error: Mutex<Option<LastError>>,
    gauges: Mutex<Option<GaugeFn>>,
}

/// The live state of one component: cheap to clone, updated by its supervisor.
#[derive(Clone)]
pub struct Component {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.inner.name)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Component {
    /// A running component with no failures yet.
    pub fn new(name: &'static str, kind: ComponentKind) -> Component {
        Component {
            inner: Arc::new(Inner {
                name,
                kind,
                status: AtomicU8::new(ComponentStatus::Running.as_u8()),
                restarts: AtomicU64::new(0),
                panics: AtomicU64::new(0),
                last_error: Mutex::new(None),
                gauges: Mutex::new(None),
            }),
        }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.inner.name
    }

    /// Whether it runs.
    pub fn status(&self) -> ComponentStatus {
        ComponentStatus::from_u8(self.inner.status.load(Ordering::Relaxed))
    }

    /// Sets whether it runs.
    pub fn set_status(&self, status: ComponentStatus) {
        self.inner.status.store(status.as_u8(), Ordering::Relaxed);
    }

    /// Counts a restart (of it, or of one of its children).
    pub fn restarted(&self) {
        self.inner.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Restarts since the node started.
    pub fn restarts(&self) -> u64 {
        self.inner.restarts.load(Ordering::Relaxed)
    }

    /// Records a failure: its message (truncated) becomes the last error.
    pub fn failed(&self, error: impl Display, panic: bool) {
        if panic {
            self.inner.panics.fetch_add(1, Ordering::Relaxed);
        }
        let mut message: String = error.to_string().chars().take(MAX_ERROR_CHARS).collect();
        message.shrink_to_fit();
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        *lock(&self.inner.last_error) = Some(LastError {
            message,
            panic,
            at_ms,
        });
    }

    /// Sets how its gauges are read (on each snapshot; keep it cheap and non-blocking).
    pub fn set_gauges(&self, read: impl Fn() -> Gauges + Send + Sync + 'static) {
        *lock(&self.inner.gauges) = Some(Box::new(read));
    }

    /// A snapshot of its state.
    pub fn state(&self) -> ComponentState {
        let gauges = lock(&self.inner.gauges)
            .as_ref()
            .map(|read| read())
            .unwrap_or_default();
        ComponentState {
            name: self.inner.name.to_owned(),
            kind: self.inner.kind,
            status: self.status(),
            restarts: self.restarts(),
            panics: self.inner.panics.load(Ordering::Relaxed),
            last_error: lock(&self.inner.last_error).clone(),
            gauges,
        }
    }
}

/// A poisoned lock only means a gauge reader panicked; the data is still whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_shows_failures_restarts_and_gauges() {
        let c = Component::new("buckets", ComponentKind::Supervisor);
        c.set_gauges(|| Gauges {
            buckets: Some(7),
            ..Gauges::default()
        });
        c.failed("x".repeat(1000), true);
        c.restarted();
        let s = c.state();
        assert_eq!(
            (s.restarts, s.panics, s.status),
            (1, 1, ComponentStatus::Running)
        );
        let e = s
            .last_error
            .clone()
            .unwrap_or_else(|| panic!("no last error"));
        assert_eq!((e.message.len(), e.panic), (MAX_ERROR_CHARS, true));
        assert_eq!(s.gauges.buckets, Some(7));
        let json = serde_json::to_value(&s).unwrap_or_default();
        assert_eq!(json["buckets"], 7);
        assert_eq!(json["kind"], "supervisor");
        assert!(json.get("queue_depth").is_none());
        let back: ComponentState = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, s);
    }
}
