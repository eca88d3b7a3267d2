//! Real `colony` node processes on loopback, on `colony-nodeproc` (as `benches/` and
//! `tests/harness` are): port-0 listeners whose bound addresses are read from the node's
//! JSON log ("colony node listening"), the first node bootstrapping and the others joining
//! through its gossip address, restarts in place on the same data dir and addresses
//! ([`Nodes`]), signals and SIGTERM with a bounded wait ([`colony_nodeproc::Node`]). Every
//! process is killed when its node (or the [`Cluster`]) is dropped, also on error or
//! panic; the data dirs live in a temporary directory removed afterwards.

use crate::fault::Kind;
use crate::netns::Net;
use anyhow::{anyhow, bail, Context, Result};
use colony_nodeproc::testsuite::Nodes;
pub use colony_nodeproc::view::{json_id, member_states};
pub use colony_nodeproc::Spec;
use colony_nodeproc::{Client, NoExit};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What every live node agreed on at one moment.
#[derive(Debug, Clone)]
pub struct Converged {
    /// Index of the leader.
    pub leader: usize,
    /// The audit head hash every node has.
    pub head_hash: String,
}

/// N node processes on loopback. Dropping it kills every process, then removes the data.
#[derive(Debug)]
pub struct Cluster {
    /// The processes, their addresses, ids and data dirs.
    nodes: Nodes,
    /// Nodes stopped with SIGSTOP.
    paused: Vec<bool>,
    spec: Spec,
    /// The binary `upgrade` switches a node to (`--upgrade-to`), and the nodes switched.
    upgrade_to: Option<PathBuf>,
    upgraded: Vec<bool>,
    /// `--net netns`: the namespaces the nodes run in (removed after the nodes are gone).
    net: Option<Net>,
    client: Client,
}

impl Cluster {
    /// Starts `n` nodes: the first bootstraps, the others join through its gossip address.
    pub fn start(spec: Spec, n: usize, net: Option<Net>) -> Result<Cluster> {
        let mut c = Cluster {
            nodes: Nodes::new("colony-chaos-").context("creating a temporary directory")?,
            paused: Vec::new(),
            upgrade_to: None,
            upgraded: vec![false; n],
            net,
            client: Client::new(Duration::from_secs(2)),
            spec,
        };
        for i in 0..n {
            let spec = c.node_spec(i);
            let addrs = c.net.as_ref().map(|net| net.addrs(i));
            c.nodes
                .start_next(&spec, addrs.as_ref())
                .with_context(|| format!("starting node {}", i + 1))?;
            c.paused.push(false);
            c.wait_ready(i)?;
        }
        Ok(c)
    }

    /// Number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Node ids by index.
    pub fn ids(&self) -> &[String] {
        self.nodes.ids()
    }

    /// The admin token.
    pub fn admin_token(&self) -> &str {
        &self.spec.admin_token
    }

    /// The HTTP base URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        self.nodes.url(i)
    }

    /// Every node's HTTP base URL.
    pub fn urls(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.url(i)).collect()
    }

    /// Whether node `i` runs (paused counts as running).
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes.is_running(i)
    }

    /// Whether node `i` is stopped with SIGSTOP.
    pub fn is_paused(&self, i: usize) -> bool {
        self.paused.get(i).copied().unwrap_or(false)
    }

    /// The voter count a healthy cluster of this size keeps.
    pub fn full_voters(&self) -> usize {
        colony_nodeproc::view::full_voters(self.len())
    }

    /// Polls `/readyz` of node `i` until 200 (bounded).
    pub fn wait_ready(&mut self, i: usize) -> Result<()> {
        let node = self
            .nodes
            .get_mut(i)
            .ok_or_else(|| anyhow!("node {} is not running", i + 1))?;
        node.wait_ready(&self.client, self.spec.wait)
            .with_context(|| format!("node {}", i + 1))
    }

    /// Fails if a node that should run has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some((i, status, tail)) = self.nodes.exited() {
            bail!(
                "node {} exited unexpectedly with {status}; last log lines:\n{tail}",
                i + 1
            );
        }
        Ok(())
    }

    /// One convergence check of every node: running, not paused, `/readyz` 200, the full
    /// voter count, the same leader, every node `active` in every view and, when
    /// `audit` is set, the same audit head hash. `Err` says what is not converged yet.
    pub fn check_converged(&self, audit: bool) -> Result<Converged, String> {
        let want = self.full_voters();
        let mut leader: Option<String> = None;
        let mut head: Option<String> = None;
        for i in 0..self.len() {
            if !self.is_running(i) {
                return Err(format!("node {} is not running", i + 1));
            }
            if self.is_paused(i) {
                return Err(format!("node {} is paused", i + 1));
            }
            let base = self.url(i);
            let ready = self
                .client
                .get(&format!("{base}/readyz"), None)
                .map_err(|e| format!("node {} /readyz: {e}", i + 1))?;
            if ready.status != 200 {
                return Err(format!("node {} /readyz: {}", i + 1, ready.status));
            }
            let view = self
                .client
                .get(&format!("{base}/v1/cluster"), Some(self.admin_token()))
                .map_err(|e| format!("node {} /v1/cluster: {e}", i + 1))?;
            if view.status != 200 {
                return Err(format!("node {} /v1/cluster: {}", i + 1, view.status));
            }
            let view = view.json();
            let voters = view["raft"]["voters"].as_array().map_or(0, Vec::len);
            if voters != want {
                return Err(format!("node {} sees {voters} voters, want {want}", i + 1));
            }
            let Some(l) = json_id(&view["raft"]["leader"]) else {
                return Err(format!("node {} knows no leader", i + 1));
            };
            match &leader {
                Some(prev) if *prev != l => {
                    return Err(format!("nodes disagree on the leader ({prev} vs {l})"));
                }
                _ => leader = Some(l),
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
            if audit {
                let v = self
                    .client
                    .get(&format!("{base}/v1/audit/verify"), Some(self.admin_token()))
                    .map_err(|e| format!("node {} /v1/audit/verify: {e}", i + 1))?;
                let h = v.json()["head_hash"].as_str().unwrap_or("").to_string();
                match &head {
                    Some(prev) if *prev != h => {
                        return Err(format!("audit head hashes differ ({prev} vs {h})"));
                    }
                    _ => head = Some(h),
                }
            }
        }
        let leader_id = leader.ok_or("no nodes")?;
        let idx = self
            .ids()
            .iter()
            .position(|id| *id == leader_id)
            .ok_or_else(|| format!("the leader {leader_id} is not one of our nodes"))?;
        Ok(Converged {
            leader: idx,
            head_hash: head.unwrap_or_default(),
        })
    }

    /// Polls [`Cluster::check_converged`] until it holds or `bound` passes.
    pub fn wait_converged(&mut self, bound: Duration, audit: bool) -> Result<Converged> {
        let deadline = Instant::now() + bound;
        loop {
            let reason = match self.check_converged(audit) {
                Ok(c) => return Ok(c),
                Err(reason) => reason,
            };
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!("the cluster did not converge within {bound:?}: {reason}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The leader as node `i` sees it (index), if it answers and knows one.
    pub fn leader_seen_by(&self, i: usize) -> Option<usize> {
        let view = self
            .client
            .get(
                &format!("{}/v1/cluster", self.url(i)),
                Some(self.admin_token()),
            )
            .ok()?;
        let l = json_id(&view.json()["raft"]["leader"])?;
        self.ids().iter().position(|id| *id == l)
    }

    /// The leader most live nodes see.
    pub fn find_leader(&self) -> Option<usize> {
        (0..self.len())
            .filter(|&i| self.is_running(i) && !self.is_paused(i))
            .find_map(|i| self.leader_seen_by(i))
    }

    /// `kill -9` node `i`.
    pub fn kill9(&mut self, i: usize) -> Result<()> {
        self.nodes
            .kill9(i)
            .ok_or_else(|| anyhow!("node {} is not running", i + 1))?;
        self.paused[i] = false;
        Ok(())
    }

    /// SIGTERM node `i` and wait (bounded) for it to exit; `kill -9` after the bound.
    /// Returns whether it exited by itself, and its exit status.
    pub fn terminate(&mut self, i: usize, bound: Duration) -> Result<(bool, String)> {
        let node = self
            .nodes
            .get_mut(i)
            .ok_or_else(|| anyhow!("node {} is not running", i + 1))?;
        let result = node.terminate(bound);
        if !matches!(result, Err(NoExit::Signal(_))) {
            // It exited or was killed: the slot is free for a restart.
            self.nodes.take(i);
            self.paused[i] = false;
        }
        match result {
            Ok(status) => Ok((true, status.to_string())),
            Err(NoExit::Killed(_)) => Ok((false, "killed after the bound".into())),
            Err(e) => Err(anyhow!("node {}: {e}", i + 1)),
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) node `i`.
    pub fn pause(&mut self, i: usize, stop: bool) -> Result<()> {
        let node = self
            .nodes
            .get(i)
            .ok_or_else(|| anyhow!("node {} is not running", i + 1))?;
        node.signal(if stop { "STOP" } else { "CONT" })
            .with_context(|| format!("node {}", i + 1))?;
        self.paused[i] = stop;
        Ok(())
    }

    /// How node `i` is started: its binary (upgraded or not) and namespace.
    fn node_spec(&self, i: usize) -> Spec {
        let mut spec = self.spec.clone();
        if let (true, Some(bin)) = (self.upgraded[i], &self.upgrade_to) {
            spec.bin = bin.clone();
        }
        if let Some(net) = &self.net {
            spec.wrap = net.wrap(i);
        }
        spec
    }

    /// Injects a network fault (`--net netns`) between node `i` and `others`.
    pub fn net_fault(&self, i: usize, others: &[usize], kind: Kind) -> Result<()> {
        let Some(net) = &self.net else {
            bail!("{} needs --net netns", kind.name());
        };
        match kind {
            Kind::NetPartition => net.partition(i, others, false),
            Kind::NetOneWay => net.partition(i, others, true),
            Kind::NetLoss => net.loss(i, others, 30),
            other => bail!("{} is not a network fault", other.name()),
        }
    }

    /// Lifts node `i`'s network faults.
    pub fn net_heal(&self, i: usize) -> Result<()> {
        match &self.net {
            Some(net) => net.heal(i),
            None => Ok(()),
        }
    }

    /// The binary [`Cluster::upgrade`] switches nodes to.
    pub fn set_upgrade_to(&mut self, bin: PathBuf) {
        self.upgrade_to = Some(bin);
    }

    /// Node `i` runs the `upgrade_to` binary from its next restart on.
    pub fn upgrade(&mut self, i: usize) -> Result<()> {
        if self.upgrade_to.is_none() {
            bail!("no binary to upgrade to (--upgrade-to)");
        }
        self.upgraded[i] = true;
        Ok(())
    }

    /// Restarts node `i` in place (same data dir and addresses), seeded with the gossip
    /// addresses of the other nodes.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        let seeds: Vec<String> = (0..self.len())
            .filter(|&j| j != i)
            .map(|j| self.nodes.addrs()[j].gossip.clone())
            .collect();
        let spec = self.node_spec(i);
        self.nodes.restart(i, &spec, &seeds)?;
        self.paused[i] = false;
        Ok(())
    }

    /// Sets node `i`'s fault switches (`PUT /v1/testing/faults`).
    pub fn set_faults(&self, i: usize, block_out: &[usize], block_in: &[usize]) -> Result<()> {
        let ids =
            |v: &[usize]| -> Vec<String> { v.iter().map(|&j| self.ids()[j].clone()).collect() };
        self.put_faults(
            i,
            &json!({"block_out": ids(block_out), "block_in": ids(block_in)}),
        )
    }

    /// Impairs what node `i` sends (Raft RPCs and gossip) with the test-only switches:
    /// `delay_ms` late, `loss_percent` % dropped; zeros heal.
    pub fn impair(&self, i: usize, delay_ms: u64, loss_percent: u8) -> Result<()> {
        self.put_faults(
            i,
            &json!({"delay_ms": delay_ms, "loss_percent": loss_percent}),
        )
    }

    /// `PUT /v1/testing/faults` on node `i` (replaces its whole fault set).
    fn put_faults(&self, i: usize, body: &serde_json::Value) -> Result<()> {
        let r = self
            .client
            .call(
                "PUT",
                &format!("{}/v1/testing/faults", self.url(i)),
                Some(self.admin_token()),
                Some(body),
            )
            .map_err(|e| anyhow!("node {} PUT /v1/testing/faults: {e}", i + 1))?;
        if !r.is_success() {
            bail!(
                "node {} PUT /v1/testing/faults: {} {}",
                i + 1,
                r.status,
                r.text
            );
        }
        Ok(())
    }

    /// Where the data dirs live.
    pub fn root(&self) -> &Path {
        self.nodes.root()
    }
}
