//! The node's components, in the order they started.

use crate::component::{Component, ComponentKind, ComponentState};
use std::sync::{Arc, Mutex};

/// Every long-lived component of a node: cheap to clone, shared by the node and the API.
#[derive(Clone, Default)]
pub struct Components {
    list: Arc<Mutex<Vec<Component>>>,
}

impl std::fmt::Debug for Components {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.all().iter().map(Component::name))
            .finish()
    }
}

impl Components {
    /// None yet.
    pub fn new() -> Components {
        Components::default()
    }

    /// Registers a new component and returns its handle.
    pub fn register(&self, name: &'static str, kind: ComponentKind) -> Component {
        let c = Component::new(name, kind);
        self.add(c.clone());
        c
    }

    /// Registers a component created elsewhere (a library's own supervisor).
    pub fn add(&self, component: Component) {
        self.list
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(component);
    }

    /// The component named `name`.
    pub fn get(&self, name: &str) -> Option<Component> {
        self.all().into_iter().find(|c| c.name() == name)
    }

    /// Every component, in start order.
    pub fn all(&self) -> Vec<Component> {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A snapshot of every component, in start order.
    pub fn states(&self) -> Vec<ComponentState> {
        self.all().iter().map(Component::state).collect()
    }
}
