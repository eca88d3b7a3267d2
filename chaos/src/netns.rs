//! Real network faults (`--net netns`): every node runs in a network namespace of its
//! own, with one veth into a bridge that lives in a hub namespace (not the runner's: its
//! firewall, e.g. Docker's `FORWARD DROP`, would filter bridged traffic); the runner
//! reaches the nodes over one more veth into that bridge. Faults are iptables rules in a
//! node's namespace, so they hit every protocol below the application (gossip UDP, Raft
//! and forwarding HTTP, the actor transport) while clients still reach the node.
//!
//! Needs root and `ip`/`iptables` (iproute2). `tc netem` (delay) needs the `sch_netem`
//! kernel module, which this machine does not have; loss uses iptables' `statistic`
//! match instead.

use anyhow::{bail, Context, Result};
use colony_nodeproc::Addrs;
use std::process::Command;

/// The namespaces, veths and bridge of one run; removed on drop.
#[derive(Debug)]
pub struct Net {
    /// Distinguishes concurrent runs (third octet of the subnet, part of every name).
    tag: u16,
    nodes: usize,
}

/// Runs `ip`/`iptables` and fails with its stderr.
fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (--net netns needs iproute2 and iptables)"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Net {
    /// Creates the hub, `nodes` node namespaces and the runner's link.
    pub fn create(nodes: usize) -> Result<Net> {
        if nodes > 200 {
            bail!("--net netns supports up to 200 nodes");
        }
        let tag = (std::process::id() % 200) as u16 + 20;
        let net = Net { tag, nodes };
        // Leftovers of an earlier run with the same tag (killed before its cleanup).
        net.remove();
        net.build()
            .context("setting up the network namespaces (needs root)")?;
        Ok(net)
    }

    fn hub(&self) -> String {
        format!("colony-{}-hub", self.tag)
    }

    /// Node `i`'s namespace.
    pub fn ns(&self, i: usize) -> String {
        format!("colony-{}-n{}", self.tag, i + 1)
    }

    /// Node `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.tag, i + 1)
    }

    fn runner_link(&self) -> String {
        format!("colony{}r", self.tag)
    }

    fn build(&self) -> Result<()> {
        let hub = self.hub();
        run("ip", &["netns", "add", &hub])?;
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        let link = self.runner_link();
        run(
            "ip",
            &[
                "link", "add", &link, "type", "veth", "peer", "name", "up0", "netns", &hub,
            ],
        )?;
        run(
            "ip",
            &["-n", &hub, "link", "set", "up0", "master", "br0", "up"],
        )?;
        let runner_ip = format!("10.77.{}.254/24", self.tag);
        run("ip", &["addr", "add", &runner_ip, "dev", &link])?;
        run("ip", &["link", "set", &link, "up"])?;
        for i in 0..self.nodes {
            let ns = self.ns(i);
            let veth = format!("v{}", i + 1);
            run("ip", &["netns", "add", &ns])?;
            run(
                "ip",
                &[
                    "-n", &hub, "link", "add", &veth, "type", "veth", "peer", "name", "eth0",
                    "netns", &ns,
                ],
            )?;
            run(
                "ip",
                &["-n", &hub, "link", "set", &veth, "master", "br0", "up"],
            )?;
            let addr = format!("{}/24", self.ip(i));
            run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Best effort: deleting a namespace deletes its veths too.
    fn remove(&self) {
        for i in 0..self.nodes {
            let _ = run("ip", &["netns", "del", &self.ns(i)]);
        }
        let _ = run("ip", &["netns", "del", &self.hub()]);
        let _ = run("ip", &["link", "del", &self.runner_link()]);
    }

    /// The command prefix that starts a process in node `i`'s namespace (`ip netns exec`
    /// execs, so the pid is the node's own).
    pub fn wrap(&self, i: usize) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.ns(i)]
    }

    /// Node `i`'s listeners: its own address, the same ports in every namespace.
    pub fn addrs(&self, i: usize) -> Addrs {
        let ip = self.ip(i);
        Addrs {
            http: format!("{ip}:8080"),
            gossip: format!("{ip}:7946"),
            raft: format!("{ip}:7947"),
            cluster: format!("{ip}:7948"),
        }
    }

    fn iptables(&self, i: usize, rule: &[&str]) -> Result<()> {
        let ns = self.ns(i);
        let mut args = vec!["netns", "exec", &ns, "iptables"];
        args.extend_from_slice(rule);
        run("ip", &args)
    }

    /// Drops node `i`'s traffic with `others`: both ways, or (`one_way`) only what `i`
    /// sends, so it hears the others but they never hear it.
    pub fn partition(&self, i: usize, others: &[usize], one_way: bool) -> Result<()> {
        for &j in others {
            let peer = self.ip(j);
            self.iptables(i, &["-A", "OUTPUT", "-d", &peer, "-j", "DROP"])?;
            if !one_way {
                self.iptables(i, &["-A", "INPUT", "-s", &peer, "-j", "DROP"])?;
            }
        }
        Ok(())
    }

    /// Drops `percent` of the packets node `i` exchanges with `others`, at random, both
    /// ways.
    pub fn loss(&self, i: usize, others: &[usize], percent: u8) -> Result<()> {
        let p = format!("{:.2}", f64::from(percent.min(100)) / 100.0);
        for &j in others {
            let peer = self.ip(j);
            for (chain, dir) in [("OUTPUT", "-d"), ("INPUT", "-s")] {
                self.iptables(
                    i,
                    &[
                        "-A",
                        chain,
                        dir,
                        &peer,
                        "-m",
                        "statistic",
                        "--mode",
                        "random",
                        "--probability",
                        &p,
                        "-j",
                        "DROP",
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Removes every rule from node `i`'s namespace.
    pub fn heal(&self, i: usize) -> Result<()> {
        self.iptables(i, &["-F"])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}
