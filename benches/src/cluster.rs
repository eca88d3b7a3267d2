//! Real `colony` node processes on loopback, on `colony-nodeproc` (as `tests/harness` and
//! `chaos/` are): port-0 listeners whose bound addresses are read from the node's JSON
//! log, the first node bootstrapping and the others joining through its gossip address
//! ([`Nodes`]). Every process is killed when its [`colony_nodeproc::Node`] (or the
//! [`Cluster`]) is dropped, also on error or panic.

use anyhow::{anyhow, bail, Context, Result};
use colony_nodeproc::testsuite::Nodes;
pub use colony_nodeproc::view::member_states;
use colony_nodeproc::Client;
pub use colony_nodeproc::{Addrs, Spec};
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
    /// The processes, their addresses, ids and data dirs.
    nodes: Nodes,
    spec: Spec,
    client: Client,
}

impl Cluster {
    /// Starts `n` nodes: the first bootstraps, the others join through its gossip address.
    /// Returns once the cluster is healthy (see [`Cluster::wait_healthy`]).
    pub fn start(spec: Spec, n: usize) -> Result<Cluster> {
        let mut c = Cluster {
            nodes: Nodes::new("colony-bench-").context("creating a temporary directory")?,
            client: Client::new(Duration::from_secs(2)),
            spec,
        };
        for i in 0..n {
            c.nodes
                .start_next(&c.spec, None)
                .with_context(|| format!("starting node {}", i + 1))?;
            c.wait_ready(i)?;
        }
        c.wait_healthy()?;
        Ok(c)
    }

    /// Number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Bound addresses by index (kept for restarts in place).
    pub fn addrs(&self) -> &[Addrs] {
        self.nodes.addrs()
    }

    /// Node ids by index.
    pub fn ids(&self) -> &[String] {
        self.nodes.ids()
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
        self.nodes.pid(i)
    }

    /// The HTTP base URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        self.nodes.url(i)
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
            if let Some((i, status, tail)) = self.nodes.exited() {
                bail!(
                    "node {} exited with {status}; last log lines:\n{tail}",
                    i + 1
                );
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
            if !self.nodes.is_running(i) {
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
            for (j, id) in self.ids().iter().enumerate() {
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
            .ids()
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
        self.nodes
            .kill9(i)
            .ok_or_else(|| anyhow!("node {} is not running", i + 1))
    }

    /// Restarts node `i` in place (same data dir and addresses) joining through `seeds`.
    pub fn restart(&mut self, i: usize, seeds: &[String]) -> Result<()> {
        self.nodes.restart(i, &self.spec, seeds)?;
        Ok(())
    }
}
