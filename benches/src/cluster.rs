//! Real `colony` node processes on loopback, started the way `tests/harness` starts them:
//! port-0 listeners whose bound addresses are read from the node's JSON log, the first
//! node bootstrapping and the others joining through its gossip address. Every process is
//! killed when its [`Node`] (or the [`Cluster`]) is dropped, also on error or panic.

use anyhow::{anyhow, bail, Context, Result};
pub use colony_nodeproc::view::member_states;
use colony_nodeproc::Client;
pub use colony_nodeproc::{Addrs, Node, Spec};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a healthy cluster looks like at one moment.
#[derive(Debug, Clone)]
pub struct Healthy {
    /// Index of the node every node agrees is the Raft leader.
    pub leader: usize,
    /// Its id.
    pub leader_id: String,
    /// What the last failed check before this one was waiting for (`None`: healthy at once).
    pub waited_on: Option<String>,
}

/// N node processes on loopback. Dropping it kills every process, then removes the data.
#[derive(Debug)]
pub struct Cluster {
    /// Nodes by index; `None` while killed. Declared first: dropped (killed) before the
    /// data dirs are removed.
    nodes: Vec<Option<Node>>,
    /// Bound addresses by index (kept for restarts in place).
    pub addrs: Vec<Addrs>,
    /// Node ids by index.
    pub ids: Vec<String>,
    /// Data dirs by index, under `root`.
    dirs: Vec<PathBuf>,
    spec: Spec,
    client: Client,
    root: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` nodes: the first bootstraps, the others join through its gossip address.
    /// Returns once the cluster is healthy (see [`Cluster::wait_healthy`]).
    pub fn start(spec: Spec, n: usize) -> Result<Cluster> {
        let root = tempfile::Builder::new()
            .prefix("colony-bench-")
            .tempdir()
            .context("creating a temporary directory")?;
        let mut c = Cluster {
            nodes: Vec::new(),
            addrs: Vec::new(),
            ids: Vec::new(),
            dirs: Vec::new(),
            client: Client::new(Duration::from_secs(2)),
            spec,
            root,
        };
        for i in 0..n {
            let dir = c.root.path().join(format!("n{}", i + 1));
            let seeds: Vec<String> = c
                .addrs
                .first()
                .map(|a| a.gossip.clone())
                .into_iter()
                .collect();
            let node = Node::spawn(&c.spec, &format!("node-{}", i + 1), &dir, None, &seeds)
                .with_context(|| format!("starting node {}", i + 1))?;
            c.addrs.push(node.addrs.clone());
            c.ids.push(node.id.clone());
            c.dirs.push(dir);
            c.nodes.push(Some(node));
            c.wait_ready(i)?;
        }
        c.wait_healthy()?;
        Ok(c)
    }

    /// Number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The admin token.
    pub fn admin_token(&self) -> &str {
        &self.spec.admin_token
    }

    /// The bound on every wait.
    pub fn wait_bound(&self) -> Duration {
        self.spec.wait
    }

    /// The OS process id of node `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes
            .get(i)
            .and_then(Option::as_ref)
            .and_then(Node::pid)
    }

    /// The HTTP base URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("http://{}", self.addrs[i].http)
    }

    /// The voter count a healthy cluster of this size keeps: 3, or 5 with 5 nodes or more.
    pub fn full_voters(&self) -> usize {
        colony_nodeproc::view::full_voters(self.len())
    }

    /// Polls `/readyz` of node `i` until 200 (bounded).
    fn wait_ready(&mut self, i: usize) -> Result<()> {
        let node = self
            .nodes
            .get_mut(i)
            .and_then(Option::as_mut)
            .ok_or_else(|| anyhow!("node {} is not running", i + 1))?;
        node.wait_ready(&self.client, self.spec.wait)
            .with_context(|| format!("node {}", i + 1))
    }

    /// Waits (bounded) until every node runs and answers `/readyz` 200, and every node's
    /// `/v1/cluster` shows the full voter count, the same leader, and every node `active`.
    pub fn wait_healthy(&mut self) -> Result<Healthy> {
        let deadline = Instant::now() + self.spec.wait;
        let mut waited_on = None;
        loop {
            let reason = match self.check_healthy() {
                Ok(h) => return Ok(Healthy { waited_on, ..h }),
                Err(reason) => reason,
            };
            waited_on = Some(reason.clone());
            for (i, slot) in self.nodes.iter_mut().enumerate() {
                if let Some(node) = slot {
                    if let Some(status) = node.exit_status() {
                        bail!(
                            "node {} exited with {status}; last log lines:\n{}",
                            i + 1,
                            node.log_tail()
                        );
                    }
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the cluster did not become healthy within {:?}: {reason}",
                    self.spec.wait
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One health check; `Err` says what is not healthy yet.
    fn check_healthy(&self) -> Result<Healthy, String> {
        let want = self.full_voters();
        let mut leader: Option<String> = None;
        for i in 0..self.len() {
            if self.nodes[i].is_none() {
                return Err(format!("node {} is not running", i + 1));
            }
            let base = self.url(i);
            let ready = self
                .client
                .get(&format!("{base}/readyz"), None)
                .map_err(|e| format!("node {} /readyz: {e}", i + 1))?;
            if ready.status != 200 {
                return Err(format!(
                    "node {} /readyz: {} {}",
                    i + 1,
                    ready.status,
                    ready.text
                ));
            }
            let view = self
                .client
                .get(&format!("{base}/v1/cluster"), Some(self.admin_token()))
                .map_err(|e| format!("node {} /v1/cluster: {e}", i + 1))?;
            if view.status != 200 {
                return Err(format!(
                    "node {} /v1/cluster: {} {}",
                    i + 1,
                    view.status,
                    view.text
                ));
            }
            let view = view.json();
            let voters = view["raft"]["voters"].as_array().map_or(0, Vec::len);
            if voters != want {
                return Err(format!("node {} sees {voters} voters, want {want}", i + 1));
            }
            let Some(l) = view["raft"]["leader"].as_str() else {
                return Err(format!("node {} knows no leader", i + 1));
            };
            match &leader {
                Some(prev) if prev != l => {
                    return Err(format!("nodes disagree on the leader ({prev} vs {l})"));
                }
                _ => leader = Some(l.to_string()),
            }
            for (j, id) in self.ids.iter().enumerate() {
                let states = member_states(&view, id);
                if states.is_empty() || states.iter().any(|s| s != "active") {
                    return Err(format!(
                        "node {} sees node {} as {states:?}, want active",
                        i + 1,
                        j + 1
                    ));
                }
            }
        }
        let leader_id = leader.ok_or("no nodes")?;
        let idx = self
            .ids
            .iter()
            .position(|id| *id == leader_id)
            .ok_or_else(|| format!("the leader {leader_id} is not one of our nodes"))?;
        Ok(Healthy {
            leader: idx,
            leader_id,
            waited_on: None,
        })
    }

    /// `kill -9` node `i`; returns the instant right after the signal.
    pub fn kill9(&mut self, i: usize) -> Result<Instant> {
        let mut node = self
            .nodes
            .get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| anyhow!("node {} is not running", i + 1))?;
        Ok(node.kill9())
    }

    /// Restarts node `i` in place (same data dir and addresses) joining through `seeds`.
    pub fn restart(&mut self, i: usize, seeds: &[String]) -> Result<()> {
        if self.nodes[i].is_some() {
            bail!("node {} is still running", i + 1);
        }
        let label = format!("node-{}", i + 1);
        let node = Node::spawn(
            &self.spec,
            &label,
            &self.dirs[i],
            Some(&self.addrs[i]),
            seeds,
        )
        .with_context(|| format!("restarting node {} in place", i + 1))?;
        if node.addrs != self.addrs[i] || node.id != self.ids[i] {
            bail!(
                "node {} came back as {} on {:?}, expected {} on {:?}",
                i + 1,
                node.id,
                node.addrs,
                self.ids[i],
                self.addrs[i]
            );
        }
        self.nodes[i] = Some(node);
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().filter_map(Option::as_mut) {
            node.kill9();
        }
    }
}
