//! The actor transport between nodes: a ractor_cluster `NodeServer` and its sessions,
//! driven by gossip membership.
//!
//! ractor_cluster has no liveness check of its own (pings are only logged) and never
//! reconnects, so membership decides: a member that comes up (or is Active/Joining in the
//! periodic reconcile) is dialed, and a member declared Down has its session stopped.
//! Only the node with the lower id dials, so a pair normally has one session; if both
//! dial anyway, ractor_cluster settles it by an election on the node names.
//!
//! Node names are `"{colony node id}@{advertised ip}"`, so a session's peer is a colony
//! node id. Remote actors show up as ractor process-group members with
//! `ActorId::Remote { node_id: <session id>, .. }`; [`ActorLink::remote_member`] maps a
//! colony node id to its session ids and picks the matching member.
//!
//! The cookie is the cluster secret. With TLS (`ActorLinkConfig::tls`) every session is
//! mutual TLS against the cluster CA, both ways, so frames are encrypted and
//! integrity-protected and only a node certificate gets a session; our accept loop takes
//! sessions from a `colony_tls::listener::TlsListener`, which runs each handshake in its
//! own task, bounded in number, per client and in time (ractor_cluster's own listener
//! would run it inline, without a timeout). Without TLS, frames are neither
//! encrypted nor MAC'd (the cookie challenge only authenticates the peer at connect
//! time): loopback only.

use crate::membership::{MemberEvent, MemberStatus, MemberView, Membership, NodeState};
use ractor::{Actor, ActorCell, ActorId, ActorRef};
use ractor_cluster::node::{NodeConnectionMode, NodeServerSessionInformation};
use ractor_cluster::{NetworkStream, NodeEventSubscription, NodeServer, NodeServerMessage};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How long a dial may take to open its TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long after a dial we wait for the session to become ready before dialing again.
const DIAL_PATIENCE: Duration = Duration::from_secs(5);

/// How often the sessions are reconciled with the member list.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(1);

/// Timeout of calls to the local NodeServer actor.
const SERVER_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings of the actor transport.
#[derive(Debug, Clone)]
pub struct ActorLinkConfig {
    /// This node's colony id (its node name on the transport).
    pub node_id: u64,
    /// The address peers dial (its IP is the hostname in the node name).
    pub advertise: SocketAddr,
    /// Shared cookie: the cluster secret.
    pub cookie: String,
    /// Mutual TLS for every session, when the node has certificates.
    pub tls: Option<ActorTls>,
}

/// The TLS configurations of the actor transport (`colony_tls::server::internal` and
/// `internal_client`).
#[derive(Debug, Clone)]
pub struct ActorTls {
    /// Accepting: requires a node certificate of the cluster CA.
    pub server: Arc<colony_tls::rustls::ServerConfig>,
    /// Dialing: verifies the peer against the cluster CA and the dialled IP, presents ours.
    pub client: Arc<colony_tls::rustls::ClientConfig>,
}

/// Handshakes of incoming sessions in flight at once (more are closed at once).
const MAX_HANDSHAKES: usize = 512;

/// Handshakes in flight from one client (IPv4 address, IPv6 /64): peers dial one session
/// each, so a handful is plenty and one host cannot take the rest.
const MAX_HANDSHAKES_PER_CLIENT: usize = 8;

/// Longest an incoming session's TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum ActorLinkError {
    /// The NodeServer actor did not start.
    #[error("cannot start the actor transport: {0}")]
    Start(String),
}

/// Session id (ractor_cluster's per-server counter) to colony node id, for ready sessions.
type SessionBook = Arc<RwLock<HashMap<u64, u64>>>;

/// Dials in progress: peer → when we dialed (so a slow handshake is not re-dialed).
type DialBook = Arc<Mutex<HashMap<u64, Instant>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// The colony node id in a transport node name (`"{id}@{host}"`).
fn colony_id(name: &str) -> Option<u64> {
    name.split_once('@')?.0.parse().ok()
}

/// Keeps the session book current; runs inside the NodeServer actor, so it only takes a
/// short lock and never blocks.
struct Subscriber {
    book: SessionBook,
    dials: DialBook,
}

impl NodeEventSubscription for Subscriber {
    fn node_session_opened(&self, _: NodeServerSessionInformation) {}
    fn node_session_authenticated(&self, _: NodeServerSessionInformation) {}
    fn node_session_ready(&self, ses: NodeServerSessionInformation) {
        let Some(peer) = ses.peer_name.as_ref().and_then(|n| colony_id(&n.name)) else {
            return;
        };
        write(&self.book).insert(ses.node_id, peer);
        // The dial (ours or the peer's) has done its job: once this session closes, the next
        // reconcile may dial again at once instead of waiting out DIAL_PATIENCE. Otherwise a
        // session closed by the peer (say, because our renewed identity made it see us Down)
        // stays down for seconds.
        lock(&self.dials).remove(&peer);
        tracing::info!(
            peer,
            session = ses.node_id,
            addr = %ses.peer_addr,
            "actor transport session ready"
        );
    }
    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        if let Some(peer) = write(&self.book).remove(&ses.node_id) {
            lock(&self.dials).remove(&peer);
            tracing::info!(
                peer,
                session = ses.node_id,
                "actor transport session closed"
            );
        }
    }
}

/// Handle to the node's actor transport. Cheap to clone.
#[derive(Clone)]
pub struct ActorLink {
    node_id: u64,
    server: ActorRef<NodeServerMessage>,
    book: SessionBook,
    /// Dials in progress (see [`DialBook`]).
    dials: DialBook,
    local_addr: SocketAddr,
    /// Accepts peers until [`ActorLink::stop`] aborts it (closing the listener).
    accept: Arc<tokio::task::AbortHandle>,
    /// Dials with mutual TLS, when on.
    connector: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for ActorLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorLink")
            .field("node_id", &self.node_id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl ActorLink {
    /// Starts the NodeServer and accepts peers on `listener` (already bound, so a clash is
    /// reported with the other listeners and port 0 works).
    pub async fn start(
        config: ActorLinkConfig,
        listener: TcpListener,
    ) -> Result<Self, ActorLinkError> {
        let local_addr = listener
            .local_addr()
            .map_err(|e| ActorLinkError::Start(e.to_string()))?;
        // ractor_cluster always runs a listener of its own and cannot report the port it
        // bound; ours (above) is the one peers dial, so its own is parked on an ephemeral
        // loopback port, where it is reachable only from this host and still needs the cookie.
        // With TLS the parked listener speaks TLS too: nothing in clear, even on loopback.
        let encryption = config.tls.as_ref().map(|t| {
            ractor_cluster::IncomingEncryptionMode::Tls(tokio_rustls::TlsAcceptor::from(
                t.server.clone(),
            ))
        });
        let server = NodeServer::new(
            0,
            config.cookie,
            config.node_id.to_string(),
            config.advertise.ip().to_string(),
            encryption,
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let (server, _) = Actor::spawn(None, server, ())
            .await
            .map_err(|e| ActorLinkError::Start(e.to_string()))?;
        let book = SessionBook::default();
        let dials = DialBook::default();
        server
            .cast(NodeServerMessage::SubscribeToEvents {
                id: "colony".into(),
                subscription: Box::new(Subscriber {
                    book: book.clone(),
                    dials: dials.clone(),
                }),
            })
            .map_err(|e| ActorLinkError::Start(e.to_string()))?;
        let tls = config.tls.as_ref().map(|t| t.server.clone());
        let accept = tokio::spawn(accept_loop(listener, server.clone(), tls)).abort_handle();
        Ok(Self {
            node_id: config.node_id,
            connector: config
                .tls
                .as_ref()
                .map(|t| tokio_rustls::TlsConnector::from(t.client.clone())),
            server,
            book,
            dials,
            local_addr,
            accept: Arc::new(accept),
        })
    }

    /// The bound listen address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Colony ids of peers with a ready session.
    pub fn connected(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = read(&self.book).values().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The member of process group `group` (in `scope`) that lives on colony node `node`,
    /// if a session to it is ready and the peer advertised one.
    pub fn remote_member(&self, scope: &str, group: &str, node: u64) -> Option<ActorCell> {
        let sessions: Vec<u64> = read(&self.book)
            .iter()
            .filter(|(_, peer)| **peer == node)
            .map(|(s, _)| *s)
            .collect();
        if sessions.is_empty() {
            return None;
        }
        ractor::pg::get_scoped_members(&scope.to_string(), &group.to_string())
            .into_iter()
            .find(|c| matches!(c.get_id(), ActorId::Remote { node_id, .. } if sessions.contains(&node_id)))
    }

    /// Dials `peer` at `addr` unless a session to it is ready or a dial is in progress.
    pub async fn connect(&self, peer: u64, addr: &str) {
        if peer == self.node_id || addr.is_empty() || self.connected().contains(&peer) {
            return;
        }
        {
            let mut dials = lock(&self.dials);
            if dials
                .get(&peer)
                .is_some_and(|t| t.elapsed() < DIAL_PATIENCE)
            {
                return;
            }
            dials.insert(peer, Instant::now());
        }
        let dial = async {
            match &self.connector {
                None => ractor_cluster::client_connect(&self.server, addr).await,
                Some(connector) => {
                    // The peer's certificate must name the IP it advertises and we dial.
                    let ip = addr
                        .parse::<SocketAddr>()
                        .map_err(|_| std::io::Error::other("not an IP:port"))?
                        .ip();
                    let name = colony_tls::rustls::pki_types::ServerName::IpAddress(ip.into());
                    ractor_cluster::client_connect_enc(&self.server, addr, connector.clone(), name)
                        .await
                }
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, dial).await {
            Ok(Ok(())) => tracing::debug!(peer, %addr, "dialed actor transport"),
            Ok(Err(e)) => tracing::info!(peer, %addr, error = %e, "cannot dial actor transport"),
            Err(_) => tracing::info!(peer, %addr, "dialing actor transport timed out"),
        }
    }

    /// Stops every session to `peer` (ractor_cluster would not notice a dead peer on its
    /// own); its remote actors disappear and pending calls to them fail at once.
    pub async fn disconnect(&self, peer: u64, why: &str) {
        lock(&self.dials).remove(&peer);
        let sessions = match ractor::call_t!(
            self.server,
            NodeServerMessage::GetSessions,
            SERVER_CALL_TIMEOUT.as_millis() as u64
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(peer, error = %e, "cannot list actor transport sessions");
                return;
            }
        };
        for ses in sessions.into_values() {
            if ses.peer_name.as_ref().and_then(|n| colony_id(&n.name)) == Some(peer) {
                tracing::info!(
                    peer,
                    session = ses.node_id,
                    why,
                    "stopping actor transport session"
                );
                ses.actor.stop(Some(why.to_string()));
            }
        }
    }

    /// Brings sessions in line with the member list: dial members we should reach (the
    /// lower id dials), drop sessions to members that are Down.
    pub async fn reconcile(&self, members: &[MemberView]) {
        for m in members.iter().filter(|m| !m.is_self) {
            match m.status {
                MemberStatus::Down => {
                    if self.connected().contains(&m.node_id) {
                        self.disconnect(m.node_id, "member_down").await;
                    }
                }
                MemberStatus::Alive | MemberStatus::Suspect => {
                    let Some(meta) = &m.meta else { continue };
                    let wanted = matches!(meta.state, NodeState::Active | NodeState::Joining);
                    if wanted && self.node_id < m.node_id {
                        self.connect(m.node_id, &meta.cluster_addr).await;
                    }
                }
            }
        }
    }

    /// Follows membership until `stop` turns true: reacts to member events at once and
    /// reconciles with the member list every [`RECONCILE_EVERY`]. Borrows the events, so
    /// a run restarted after a failure goes on with the same channel.
    pub async fn run(
        self,
        membership: Membership,
        events: &mut tokio::sync::mpsc::Receiver<MemberEvent>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(RECONCILE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // The watch guard is dropped inside: it must not be held across the select.
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
                _ = tick.tick() => self.reconcile(&membership.members()).await,
                ev = events.recv() => match ev {
                    Some(MemberEvent::Up(m)) | Some(MemberEvent::Updated(m)) => {
                        self.reconcile(std::slice::from_ref(&m)).await;
                    }
                    Some(MemberEvent::Down(m)) => self.disconnect(m.node_id, "member_down").await,
                    None => break,
                },
            }
        }
    }

    /// Stops accepting peers, then the NodeServer and with it every session.
    pub async fn stop(&self) {
        self.accept.abort();
        let _ = self
            .server
            .stop_and_wait(None, Some(Duration::from_secs(2)))
            .await;
    }
}

/// Accepts peers on our listener and hands each connection to the NodeServer, as its own
/// listener would; with TLS, once its handshake (bounded like every TLS listener of the
/// node: `colony_tls::listener`) has completed.
async fn accept_loop(
    listener: TcpListener,
    server: ActorRef<NodeServerMessage>,
    tls: Option<Arc<colony_tls::rustls::ServerConfig>>,
) {
    if let Some(config) = tls {
        return accept_tls(listener, server, config).await;
    }
    loop {
        let (stream, peer_addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "actor transport accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(local_addr) = stream.local_addr() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let opened = NodeServerMessage::ConnectionOpened {
            stream: Box::new(NetworkStream::Raw {
                peer_addr,
                local_addr,
                stream,
            }),
            is_server: true,
        };
        if server.cast(opened).is_err() {
            // The NodeServer stopped (shutdown): nothing left to accept for.
            break;
        }
    }
}

/// The TLS accept loop: sessions whose mutual TLS handshake completed.
async fn accept_tls(
    listener: TcpListener,
    server: ActorRef<NodeServerMessage>,
    config: Arc<colony_tls::rustls::ServerConfig>,
) {
    let limits = colony_tls::listener::Limits {
        max_in_flight: MAX_HANDSHAKES,
        max_per_ip: MAX_HANDSHAKES_PER_CLIENT,
        timeout: HANDSHAKE_TIMEOUT,
    };
    let mut tls = match colony_tls::listener::TlsListener::new(listener, config, limits) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the actor transport's TLS listener");
            return;
        }
    };
    loop {
        let (stream, peer_addr) = axum::serve::Listener::accept(&mut tls).await;
        let Ok(local_addr) = stream.get_ref().0.local_addr() else {
            continue;
        };
        let opened = NodeServerMessage::ConnectionOpened {
            stream: Box::new(NetworkStream::TlsServer {
                peer_addr,
                local_addr,
                stream,
            }),
            is_server: true,
        };
        if server.cast(opened).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn link(node_id: u64) -> ActorLink {
        link_with(node_id, None).await
    }

    async fn link_with(node_id: u64, tls: Option<ActorTls>) -> ActorLink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let advertise = listener.local_addr().expect("addr");
        let config = ActorLinkConfig {
            node_id,
            advertise,
            cookie: "test-cookie".into(),
            tls,
        };
        ActorLink::start(config, listener).await.expect("start")
    }

    /// Mutual TLS configs for a node on 127.0.0.1 whose certificate `ca` issued, kept
    /// in `dir`; the CA that `trust` names is the one it trusts.
    fn tls(dir: &std::path::Path, ca: &colony_tls::certs::Issued) -> ActorTls {
        use colony_tls::files::{write, CERT_MODE, KEY_MODE};
        let node =
            colony_tls::certs::create_node(&ca.cert_pem, &ca.key_pem, &["127.0.0.1".into()], 1)
                .expect("node cert");
        write(&dir.join("ca.crt"), ca.cert_pem.as_bytes(), CERT_MODE, true).expect("ca");
        write(
            &dir.join("node.crt"),
            node.cert_pem.as_bytes(),
            CERT_MODE,
            true,
        )
        .expect("crt");
        write(
            &dir.join("node.key"),
            node.key_pem.as_bytes(),
            KEY_MODE,
            true,
        )
        .expect("key");
        let id = Arc::new(colony_tls::identity::NodeIdentity::load(dir).expect("identity"));
        ActorTls {
            server: Arc::new(colony_tls::server::internal(&id).expect("server")),
            client: Arc::new(colony_tls::server::internal_client(&id).expect("client")),
        }
    }

    #[tokio::test]
    async fn with_tls_nodes_of_the_cluster_ca_get_a_session_and_another_cas_node_does_not() {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
        let ca = colony_tls::certs::create_ca("cluster", 1).expect("ca");
        let other = colony_tls::certs::create_ca("other", 1).expect("other");
        let a = link_with(1, Some(tls(dirs[0].path(), &ca))).await;
        let b = link_with(2, Some(tls(dirs[1].path(), &ca))).await;
        // Knows the cookie, but its certificate is another CA's.
        let stranger = link_with(3, Some(tls(dirs[2].path(), &other))).await;
        a.connect(2, &b.local_addr().to_string()).await;
        until("the TLS session is ready on both sides", || {
            a.connected() == [2] && b.connected() == [1]
        })
        .await;
        stranger.connect(2, &b.local_addr().to_string()).await;
        a.connect(3, &stranger.local_addr().to_string()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(b.connected(), [1], "the stranger got no session on b");
        assert_eq!(a.connected(), [2], "a refused the stranger's certificate");
        assert!(stranger.connected().is_empty());
        // A plain (non-TLS) peer gets nothing either.
        let plain = link(4).await;
        plain.connect(2, &b.local_addr().to_string()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(b.connected(), [1]);
        for l in [a, b, stranger, plain] {
            l.stop().await;
        }
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_session_the_peer_closed_can_be_dialed_again_at_once() {
        let (a, b) = (link(1).await, link(2).await);
        let b_addr = b.local_addr().to_string();
        a.connect(2, &b_addr).await;
        until("the session is ready on both sides", || {
            a.connected() == [2] && b.connected() == [1]
        })
        .await;
        // The peer drops the session (it saw our identity go Down, say).
        b.disconnect(1, "test").await;
        until("the session is gone", || a.connected().is_empty()).await;
        until("no dial is left pending", || lock(&a.dials).is_empty()).await;
        // So the next reconcile dials straight away instead of waiting out DIAL_PATIENCE.
        a.connect(2, &b_addr).await;
        until("the session is back", || a.connected() == [2]).await;
        a.stop().await;
        b.stop().await;
    }

    #[test]
    fn node_names_carry_the_colony_id() {
        assert_eq!(colony_id("42@127.0.0.1"), Some(42));
        assert_eq!(colony_id("x@127.0.0.1"), None);
        assert_eq!(colony_id("42"), None);
    }
}
