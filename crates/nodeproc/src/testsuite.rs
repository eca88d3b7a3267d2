//! Fixtures shared by `tests/harness`, `benches/` and `chaos/` (feature `testsuite`): a
//! temporary directory, and [`Nodes`], N node processes with their data dirs under one
//! temporary directory, on which the clusters of `benches/` and `chaos/` are built (the
//! harness's test `Cluster` restarts nodes on wiped data dirs, with new ids, so it keeps
//! its own list of harness nodes).

use crate::node::{Addrs, Node, SpawnError, Spec};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Instant;

/// A fresh temporary directory whose name starts with `prefix`, removed when dropped.
pub fn temp_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(prefix).tempdir()
}

/// Why [`Nodes::restart`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// The node still runs.
    #[error("node {node} is still running")]
    Running {
        /// The node's number (index + 1).
        node: usize,
    },
    /// It did not start.
    #[error("restarting node {node} in place: {error}")]
    Spawn {
        /// The node's number (index + 1).
        node: usize,
        /// Why.
        error: SpawnError,
    },
    /// It came back with another id or on other addresses (it was killed again).
    #[error("node {node} came back as {found}, expected {expected}")]
    Changed {
        /// The node's number (index + 1).
        node: usize,
        /// Its id and addresses now.
        found: String,
        /// Its id and addresses before.
        expected: String,
    },
}

/// N node processes on loopback, numbered from 1 in their log labels (`node-N`) and data
/// dirs (`nN` under [`Nodes::root`]): node 1 bootstraps, the others join through its
/// gossip address. Dropping it kills every process, then removes the data.
#[derive(Debug)]
pub struct Nodes {
    /// Nodes by index; `None` while killed. Declared first: killed before the data goes.
    nodes: Vec<Option<Node>>,
    /// Bound addresses by index (kept for restarts in place).
    addrs: Vec<Addrs>,
    /// `http` or `https`, by index.
    schemes: Vec<&'static str>,
    /// Node ids by index, as each logged at its first start.
    ids: Vec<String>,
    /// Data dirs by index, under `root`.
    dirs: Vec<PathBuf>,
    root: tempfile::TempDir,
}

impl Nodes {
    /// No nodes yet; their data dirs go in a new temporary directory named `<prefix>…`.
    pub fn new(prefix: &str) -> std::io::Result<Nodes> {
        Ok(Nodes {
            nodes: Vec::new(),
            addrs: Vec::new(),
            schemes: Vec::new(),
            ids: Vec::new(),
            dirs: Vec::new(),
            root: temp_dir(prefix)?,
        })
    }

    /// Starts the next node with `spec` on `addrs` (`None`: port 0), joining through node
    /// 1's gossip address unless it is node 1; returns its index once it has logged its
    /// addresses (not once it is ready: see [`Node::wait_ready`]).
    pub fn start_next(&mut self, spec: &Spec, addrs: Option<&Addrs>) -> Result<usize, SpawnError> {
        let i = self.nodes.len();
        let dir = self.root.path().join(format!("n{}", i + 1));
        let seeds: Vec<String> = self
            .addrs
            .first()
            .map(|a| a.gossip.clone())
            .into_iter()
            .collect();
        let node = Node::spawn(spec, &format!("node-{}", i + 1), &dir, addrs, &seeds)?;
        self.addrs.push(node.addrs.clone());
        self.schemes.push(node.scheme);
        self.ids.push(node.id.clone());
        self.dirs.push(dir);
        self.nodes.push(Some(node));
        Ok(i)
    }

    /// Number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was started.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Bound addresses by index.
    pub fn addrs(&self) -> &[Addrs] {
        &self.addrs
    }

    /// Node ids by index.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The HTTP base URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("{}://{}", self.schemes[i], self.addrs[i].http)
    }

    /// Where the data dirs live.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The data dir of node `i`.
    pub fn dir(&self, i: usize) -> &Path {
        &self.dirs[i]
    }

    /// Node `i`, if it runs.
    pub fn get(&self, i: usize) -> Option<&Node> {
        self.nodes.get(i).and_then(Option::as_ref)
    }

    /// Node `i`, if it runs.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Node> {
        self.nodes.get_mut(i).and_then(Option::as_mut)
    }

    /// Whether node `i` runs (has not been killed or taken; a stopped process counts).
    pub fn is_running(&self, i: usize) -> bool {
        self.get(i).is_some()
    }

    /// The OS process id of node `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.get(i).and_then(Node::pid)
    }

    /// Takes node `i` out (e.g. to wait for its exit); it is killed when dropped.
    pub fn take(&mut self, i: usize) -> Option<Node> {
        self.nodes.get_mut(i).and_then(Option::take)
    }

    /// `kill -9` node `i`; returns the instant right after the signal, or `None` if it was
    /// not running.
    pub fn kill9(&mut self, i: usize) -> Option<Instant> {
        self.take(i).map(|mut node| node.kill9())
    }

    /// The first node that should run but has exited: its index, exit status and last log
    /// lines.
    pub fn exited(&mut self) -> Option<(usize, ExitStatus, String)> {
        self.nodes.iter_mut().enumerate().find_map(|(i, slot)| {
            let node = slot.as_mut()?;
            let status = node.exit_status()?;
            Some((i, status, node.log_tail()))
        })
    }

    /// Restarts node `i` in place (same data dir and addresses) with `spec`, joining
    /// through `seeds`; fails unless it comes back with the same id and addresses.
    pub fn restart(&mut self, i: usize, spec: &Spec, seeds: &[String]) -> Result<(), RestartError> {
        if self.is_running(i) {
            return Err(RestartError::Running { node: i + 1 });
        }
        let node = Node::spawn(
            spec,
            &format!("node-{}", i + 1),
            &self.dirs[i],
            Some(&self.addrs[i]),
            seeds,
        )
        .map_err(|error| RestartError::Spawn { node: i + 1, error })?;
        if node.addrs != self.addrs[i] || node.id != self.ids[i] {
            return Err(RestartError::Changed {
                node: i + 1,
                found: format!("{} on {:?}", node.id, node.addrs),
                expected: format!("{} on {:?}", self.ids[i], self.addrs[i]),
            });
        }
        self.nodes[i] = Some(node);
        Ok(())
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        // Every process is gone before `root` (the data dirs) is removed.
        for node in self.nodes.iter_mut().filter_map(Option::as_mut) {
            node.kill9();
        }
    }
}
