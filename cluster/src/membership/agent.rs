//! The tokio driver: one task owns the UDP socket, the foca instance and its timers.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError, RwLock,
    },
    time::{Duration, Instant},
};

use foca::{
    Foca, Member, Notification, OwnedNotification, PostcardCodec, Runtime, State, Timer, TimerToken,
};
use foca_rand::{
    rngs::{SmallRng, SysRng},
    RngExt, SeedableRng,
};
use serde::Serialize;
use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot},
    time::MissedTickBehavior,
};

use super::{
    auth::{Legacy, PacketAuth, FRAMING_OVERHEAD},
    config::{MembershipConfig, MAX_PACKET_SIZE, META_REFRESH_INTERVAL, REJOIN_INTERVAL},
    health::{doubts_itself, DownDeferrals},
    identity::NodeIdentity,
    meta::{
        encode_announcement, lock_book, BroadcastTarget, MetaBook, MetaHandler, NodeMeta, NodeState,
    },
    timers::TimerQueue,
    view::{MemberEvent, MemberStatus, MemberView, Tracker, ViewEntry},
};

/// Capacity of the event channel returned by [`Membership::start`].
///
/// Events are never allowed to block the gossip loop (a stalled loop would stop answering
/// probes and get this node declared Down). When the channel is full the event is dropped
/// with a warning and counted in [`MembershipCounters::events_dropped`]; a consumer that
/// falls behind should resynchronise from [`Membership::members`], the source of truth.
pub const EVENT_CHANNEL_CAPACITY: usize = 1024;

/// Receive buffer: a full foca packet plus framing, with room to spare so an oversized
/// datagram is truncated (and then fails authentication) rather than silently accepted.
const RECV_BUFFER: usize = 2048;

/// While alone, also announce to at most this many members we hold as Down.
const MAX_DOWN_ANNOUNCES: usize = 8;

type Swim = Foca<NodeIdentity, PostcardCodec, SmallRng, MetaHandler>;

/// Membership could not start.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// A setting is out of range or inconsistent.
    #[error("invalid membership config: {0}")]
    InvalidConfig(String),
    /// The gossip socket could not be bound (address in use, not local, ...).
    #[error("binding the gossip socket to {addr}: {source}")]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bound socket's address could not be read.
    #[error("reading the gossip socket's local address: {0}")]
    LocalAddr(std::io::Error),
    /// Our metadata could not be encoded or handed to foca (e.g. too large).
    #[error("announcing node metadata: {0}")]
    Metadata(String),
}

/// Cumulative counters since start, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MembershipCounters {
    /// Datagrams received (not counting ones dropped by [`Membership::set_blocked`]).
    pub packets_in: u64,
    /// Datagrams sent successfully.
    pub packets_out: u64,
    /// Received datagrams dropped as unauthentic (bad tag, wrong framing), refused
    /// version 1, or undecodable.
    pub packets_rejected: u64,
    /// Authentic datagrams dropped as replays: a sequence number seen already, or a
    /// timestamp outside the window.
    pub packets_replayed: u64,
    /// Times a member went from Alive to Suspect in our view.
    pub suspect_events: u64,
    /// [`MemberEvent::Down`] events produced (including dropped ones).
    pub down_events: u64,
    /// [`MemberEvent::Up`] events produced (including dropped ones).
    pub up_events: u64,
    /// Events dropped because the event channel was full.
    pub events_dropped: u64,
    /// Times this node was declared Down by the cluster and renewed its identity.
    pub identity_renewals: u64,
    /// "Suspect to Down" verdicts postponed because this node doubted its own
    /// connectivity (see `health.rs`).
    pub down_verdicts_postponed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    packets_rejected: AtomicU64,
    packets_replayed: AtomicU64,
    suspect_events: AtomicU64,
    down_events: AtomicU64,
    up_events: AtomicU64,
    events_dropped: AtomicU64,
    identity_renewals: AtomicU64,
    down_verdicts_postponed: AtomicU64,
}

/// Wall-clock milliseconds since the Unix epoch (gossip timestamps).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// State shared between the [`Membership`] handles and the agent loop. Locks are std
/// locks held only for short, non-async sections.
#[derive(Debug)]
struct Shared {
    local_addr: SocketAddr,
    published: Mutex<Published>,
    blocked: RwLock<HashSet<SocketAddr>>,
    /// Test-only impairment of every datagram we send: added delay (ms), loss (percent).
    delay_ms: AtomicU64,
    loss_percent: AtomicU64,
    counters: Counters,
}

/// The member list as of the loop's last interaction with foca.
#[derive(Debug)]
struct Published {
    me: MemberView,
    others: Vec<ViewEntry>,
}

impl Shared {
    fn published(&self) -> std::sync::MutexGuard<'_, Published> {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn is_blocked(&self, addr: SocketAddr) -> bool {
        let blocked = self.blocked.read().unwrap_or_else(PoisonError::into_inner);
        !blocked.is_empty() && blocked.contains(&addr)
    }
}

enum Command {
    SetState(NodeState),
    Leave(oneshot::Sender<()>),
}

/// Handle to a running SWIM membership agent (cheap to clone).
///
/// The agent runs as one tokio task. It stops after [`Membership::leave`], or — without
/// telling anyone, like a crash — once every handle has been dropped; peers then detect it
/// as failed within the configured timings.
#[derive(Clone)]
pub struct Membership {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// Binds the gossip socket, announces to the seeds and spawns the agent loop on the
    /// current tokio runtime. Returns the handle and the receiver of member events (see
    /// [`EVENT_CHANNEL_CAPACITY`] for what happens when it is not drained).
    pub async fn start(
        cfg: MembershipConfig,
    ) -> Result<(Membership, mpsc::Receiver<MemberEvent>), MembershipError> {
        cfg.validate()?;
        let auth = PacketAuth::new(&cfg.secret, cfg.legacy).map_err(|_| {
            MembershipError::InvalidConfig("secret is not usable as a gossip key".to_owned())
        })?;
        let socket = UdpSocket::bind(cfg.bind)
            .await
            .map_err(|source| MembershipError::Bind {
                addr: cfg.bind,
                source,
            })?;
        let local_addr = socket.local_addr().map_err(MembershipError::LocalAddr)?;
        let advertise = advertised_addr(cfg.advertise, local_addr)?;

        let identity = NodeIdentity::fresh(cfg.node_id, advertise);
        // SWIM only needs unpredictable-enough member selection, not cryptographic
        // randomness; fall back to a seed from the boot stamp if the OS RNG is unavailable.
        let identity_seed = identity.boot ^ cfg.node_id;
        let rng = SmallRng::try_from_rng(&mut SysRng)
            .unwrap_or_else(|_| SmallRng::seed_from_u64(identity_seed));
        let book = MetaBook::default();
        let broadcast_target = BroadcastTarget::default();
        let foca = Foca::with_custom_broadcast(
            identity,
            cfg.foca_config(),
            rng,
            PostcardCodec,
            MetaHandler::new(book.clone(), broadcast_target.clone()),
        );

        let me = MemberView {
            node_id: cfg.node_id,
            gossip_addr: advertise,
            meta: Some(cfg.meta.clone()),
            status: MemberStatus::Alive,
            incarnation: 0,
            boot: foca.identity().boot,
            last_seen_ms_ago: None,
            is_self: true,
        };
        let shared = Arc::new(Shared {
            local_addr,
            published: Mutex::new(Published {
                me,
                others: Vec::new(),
            }),
            blocked: RwLock::new(HashSet::new()),
            delay_ms: AtomicU64::new(0),
            loss_percent: AtomicU64::new(0),
            counters: Counters::default(),
        });
        let (event_tx, event_rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
        let (command_tx, command_rx) = mpsc::unbounded_channel();

        let seeds = cfg
            .seeds
            .iter()
            .copied()
            .filter(|seed| *seed != advertise && *seed != local_addr)
            .collect();
        let mut agent = Agent {
            foca,
            rt: LoopRuntime::new(auth),
            socket: Arc::new(socket),
            loss_rng: SmallRng::seed_from_u64(identity_seed),
            shared: shared.clone(),
            book,
            broadcast_target,
            tracker: Tracker::default(),
            events: event_tx,
            commands: command_rx,
            seeds,
            meta: cfg.meta,
            meta_seq: 0,
            meta_sent_at: Instant::now(),
            remove_down_after: cfg.remove_down_after,
            suspect_to_down: cfg.suspect_to_down,
            down_deferrals: DownDeferrals::default(),
            probe_period: cfg.probe_period,
        };
        agent.broadcast_meta().map_err(MembershipError::Metadata)?;
        agent.announce_to_seeds();
        agent.after_interaction().await;
        tracing::info!(
            node_id = cfg.node_id,
            %local_addr,
            %advertise,
            seeds = agent.seeds.len(),
            "gossip membership started"
        );
        tokio::spawn(agent.run());

        Ok((
            Membership {
                shared,
                commands: command_tx,
            },
            event_rx,
        ))
    }

    /// Resolves once the agent loop has ended (on leave, or when it died), saying which.
    pub async fn agent_stopped(&self) -> String {
        self.commands.closed().await;
        "the gossip agent's loop ended".to_owned()
    }

    /// The address the gossip socket is actually bound to (resolves a port 0 bind).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Every member we know of, ourselves first (`is_self`, `Alive`), then the others
    /// (Alive, Suspect, and Down ones until `remove_down_after`) ordered by node id.
    pub fn members(&self) -> Vec<MemberView> {
        let now = Instant::now();
        let published = self.shared.published();
        std::iter::once(published.me.clone())
            .chain(published.others.iter().map(|e| e.render(now)))
            .collect()
    }

    /// Changes our gossiped state. Peers see an [`MemberEvent::Updated`] within a few
    /// hundred milliseconds; liveness is not affected. No-op once the agent has stopped.
    pub fn set_state(&self, state: NodeState) {
        // An error only means the loop has stopped: nothing to gossip, nothing to show.
        if self.commands.send(Command::SetState(state)).is_ok() {
            if let Some(meta) = self.shared.published().me.meta.as_mut() {
                // Read-your-writes for members(); the loop republishes the same thing.
                meta.state = state;
            }
        }
    }

    /// Leaves the cluster gracefully: tells a few live members that we are Down (so the
    /// cluster does not wait for failure detection), sends those packets, then stops the
    /// agent. Returns once the agent has stopped; returns at once if it already had.
    /// Afterwards [`Membership::members`] keeps returning the last view.
    pub async fn leave(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.commands.send(Command::Leave(done_tx)).is_ok() {
            // An error means the loop ended on its own meanwhile: stopped either way.
            let _ = done_rx.await;
        }
    }

    /// TEST-ONLY fault injection: drop every packet sent to or received from these gossip
    /// addresses (an empty list heals). Always compiled; callers gate it behind a config
    /// flag so production nodes cannot be partitioned by accident.
    pub fn set_blocked(&self, peers: Vec<SocketAddr>) {
        let mut blocked = self
            .shared
            .blocked
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *blocked = peers.into_iter().collect();
        tracing::warn!(blocked = ?*blocked, "gossip fault injection: blocked peers changed");
    }

    /// TEST-ONLY fault injection: delays every datagram this node sends by `delay` and
    /// drops `loss_percent` % of them at random (zero and zero heal). Same gating as
    /// [`Membership::set_blocked`].
    pub fn set_impaired(&self, delay: Duration, loss_percent: u8) {
        let delay_ms = delay.as_millis().min(u64::MAX as u128) as u64;
        self.shared.delay_ms.store(delay_ms, Ordering::Relaxed);
        self.shared
            .loss_percent
            .store(u64::from(loss_percent.min(100)), Ordering::Relaxed);
        tracing::warn!(
            delay_ms,
            loss_percent,
            "gossip fault injection: outgoing impairment changed"
        );
    }

    /// Cumulative counters since start.
    pub fn counters(&self) -> MembershipCounters {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MembershipCounters {
            packets_in: get(&c.packets_in),
            packets_out: get(&c.packets_out),
            packets_rejected: get(&c.packets_rejected),
            packets_replayed: get(&c.packets_replayed),
            suspect_events: get(&c.suspect_events),
            down_events: get(&c.down_events),
            up_events: get(&c.up_events),
            events_dropped: get(&c.events_dropped),
            identity_renewals: get(&c.identity_renewals),
            down_verdicts_postponed: get(&c.down_verdicts_postponed),
        }
    }
}

/// The address peers reach us at: the configured one (port 0 = the bound port) or the
/// bound address, which must then be routable.
fn advertised_addr(
    advertise: Option<SocketAddr>,
    local: SocketAddr,
) -> Result<SocketAddr, MembershipError> {
    let mut addr = advertise.unwrap_or(local);
    if addr.port() == 0 {
        addr.set_port(local.port());
    }
    if addr.ip().is_unspecified() {
        return Err(MembershipError::InvalidConfig(format!(
            "cannot advertise the wildcard address {addr}: set `advertise`"
        )));
    }
    Ok(addr)
}

/// foca's runtime: collects what one interaction with foca produced (packets, timers,
/// notifications) so the loop can act on it right after, without blocking inside foca.
struct LoopRuntime {
    auth: PacketAuth,
    outbox: Vec<(SocketAddr, Vec<u8>)>,
    timers: TimerQueue,
    notifications: Vec<OwnedNotification<NodeIdentity>>,
    /// When we last received an accepted packet from each address.
    last_seen: HashMap<SocketAddr, Instant>,
    /// Our own incarnation, as stamped on the last packet we sent (foca keeps it private).
    incarnation: u16,
    /// foca's current timer token, as on the last timer it submitted: it changes with our
    /// identity, and foca ignores timers that carry an older one.
    token: Option<TimerToken>,
}

impl LoopRuntime {
    fn new(auth: PacketAuth) -> Self {
        Self {
            auth,
            outbox: Vec::new(),
            timers: TimerQueue::default(),
            notifications: Vec::new(),
            last_seen: HashMap::new(),
            incarnation: 0,
            token: None,
        }
    }
}

impl Runtime<NodeIdentity> for LoopRuntime {
    fn notify(&mut self, notification: Notification<'_, NodeIdentity>) {
        match notification {
            // Per-packet notifications are consumed here, by reference, to avoid cloning
            // every header.
            Notification::DataReceived(header) => {
                self.last_seen.insert(header.src.addr, Instant::now());
            }
            Notification::DataSent(header) => self.incarnation = header.src_incarnation,
            Notification::ProbeFailed(_, member) => {
                tracing::debug!(?member, "probe failed (direct and indirect)");
            }
            other => self.notifications.push(other.to_owned()),
        }
    }

    fn send_to(&mut self, to: NodeIdentity, data: &[u8]) {
        // Sealed here so the tag covers exactly the bytes foca produced.
        let sealed = self.auth.seal(data, unix_ms());
        self.outbox.push((to.addr, sealed));
    }

    fn submit_after(&mut self, event: Timer<NodeIdentity>, after: Duration) {
        self.token = match &event {
            Timer::ProbeRandomMember(t)
            | Timer::PeriodicAnnounce(t)
            | Timer::PeriodicAnnounceDown(t)
            | Timer::PeriodicGossip(t)
            | Timer::SendIndirectProbe { token: t, .. }
            | Timer::ChangeSuspectToDown { token: t, .. } => Some(*t),
            Timer::RemoveDown(_) => self.token,
        };
        self.timers.submit(event, after);
    }
}

struct Agent {
    foca: Swim,
    rt: LoopRuntime,
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
    /// Draws for the test-only packet loss.
    loss_rng: SmallRng,
    book: MetaBook,
    broadcast_target: BroadcastTarget,
    tracker: Tracker,
    events: mpsc::Sender<MemberEvent>,
    commands: mpsc::UnboundedReceiver<Command>,
    seeds: Vec<SocketAddr>,
    meta: NodeMeta,
    meta_seq: u64,
    meta_sent_at: Instant,
    remove_down_after: Duration,
    suspect_to_down: Duration,
    /// Down verdicts postponed while this node doubts its own connectivity.
    down_deferrals: DownDeferrals<NodeIdentity>,
    probe_period: Duration,
}

impl Agent {
    async fn run(mut self) {
        let mut buf = vec![0u8; RECV_BUFFER];
        let mut housekeeping = tokio::time::interval(REJOIN_INTERVAL);
        housekeeping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // start() already announced; the first tick is one interval from now.
        housekeeping.reset();

        loop {
            let next_due = self.rt.timers.next_due();
            // Any deadline will do when no timer is pending: that branch is disabled then.
            let sleep_until =
                next_due.unwrap_or_else(|| tokio::time::Instant::now() + REJOIN_INTERVAL);
            tokio::select! {
                // Timers first: under a packet flood probes and suspicion timeouts must
                // still run on time.
                biased;
                () = tokio::time::sleep_until(sleep_until), if next_due.is_some() => {
                    self.fire_due_timers();
                }
                command = self.commands.recv() => match command {
                    Some(Command::SetState(state)) => self.set_state(state),
                    Some(Command::Leave(done)) => {
                        self.leave().await;
                        // Closed before answering, so calls made after leave() returns
                        // already see a stopped agent.
                        self.commands.close();
                        let _ = done.send(());
                        break;
                    }
                    None => {
                        tracing::info!("all membership handles dropped: stopping without leaving");
                        break;
                    }
                },
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => self.on_datagram(buf.get(..len).unwrap_or_default(), from),
                    // E.g. ICMP port-unreachable surfacing on some platforms: not fatal.
                    Err(error) => tracing::debug!(%error, "gossip socket receive error"),
                },
                _ = housekeeping.tick() => self.housekeeping(),
            }
            self.after_interaction().await;
        }
    }

    fn fire_due_timers(&mut self) {
        let now = tokio::time::Instant::now();
        while let Some(timer) = self.rt.timers.pop_due(now) {
            if let Timer::ChangeSuspectToDown {
                member_id,
                incarnation,
                token,
            } = &timer
            {
                // Only a timer foca still acts on (its token is current, the member still
                // Suspect at that incarnation) is worth postponing; the others are no-ops.
                let live = self.rt.token == Some(*token)
                    && self.foca.iter_membership_state().any(|m| {
                        m.id() == member_id
                            && m.state() == State::Suspect
                            && m.incarnation() == *incarnation
                    });
                if live {
                    let was = self.down_deferrals.is_postponed(member_id);
                    let doubts = self.doubts_itself();
                    let step = self.suspect_to_down;
                    let delay =
                        self.down_deferrals
                            .postpone(member_id, doubts, Instant::now(), step);
                    if let Some(delay) = delay {
                        bump(&self.shared.counters.down_verdicts_postponed, 1);
                        if !was {
                            tracing::info!(
                                node_id = member_id.node_id,
                                addr = %member_id.addr,
                                "fewer members are in touch with this node than are silent; postponing declaring one Down"
                            );
                        }
                        self.rt.timers.submit(timer, delay);
                        continue;
                    }
                } else {
                    self.down_deferrals.forget(member_id);
                }
            }
            if let Err(error) = self.foca.handle_timer(timer, &mut self.rt) {
                tracing::debug!(%error, "foca timer error (ignored)");
            }
        }
    }

    /// Local health (see `health.rs`): whether fewer of this node's other members (not
    /// Down) are in touch than are silent. Silent: Suspect, or not heard from for a whole
    /// probe cycle (`probe_period` per member: every member probes each other once a cycle,
    /// so a live one is normally heard from at least that often).
    fn doubts_itself(&self) -> bool {
        let now = Instant::now();
        let me = self.foca.identity().addr;
        let others = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() != State::Down && m.id().addr != me);
        let cycle = self.probe_period.saturating_mul(
            u32::try_from(self.foca.num_members())
                .unwrap_or(u32::MAX)
                .max(2),
        );
        let (mut heard, mut silent) = (0, 0);
        for m in others {
            let recent = self
                .rt
                .last_seen
                .get(&m.id().addr)
                .is_some_and(|at| now.saturating_duration_since(*at) <= cycle);
            if m.state() == State::Alive && recent {
                heard += 1;
            } else {
                silent += 1;
            }
        }
        doubts_itself(heard, silent)
    }

    fn on_datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        if self.shared.is_blocked(from) {
            tracing::trace!(%from, "dropped datagram from blocked peer");
            return;
        }
        bump(&self.shared.counters.packets_in, 1);
        let payload = match self.rt.auth.open(datagram, unix_ms()) {
            Ok(payload) => payload,
            Err(why) => {
                let counter = if why.is_replay() {
                    &self.shared.counters.packets_replayed
                } else {
                    &self.shared.counters.packets_rejected
                };
                bump(counter, 1);
                tracing::debug!(%from, %why, len = datagram.len(), "gossip packet rejected");
                return;
            }
        };
        if let Err(error) = self.foca.handle_data(&payload, &mut self.rt) {
            match error {
                foca::Error::Decode(_) | foca::Error::MalformedPacket | foca::Error::DataTooBig => {
                    // Authentic but undecodable: a peer speaking another protocol version.
                    bump(&self.shared.counters.packets_rejected, 1);
                    tracing::debug!(%from, %error, "undecodable gossip packet");
                }
                // Stale or self-addressed messages, metadata we could not decode: the
                // membership part of the packet was still processed.
                other => tracing::debug!(%from, error = %other, "foca packet error (ignored)"),
            }
        }
    }

    fn set_state(&mut self, state: NodeState) {
        if self.meta.state == state {
            return;
        }
        tracing::info!(?state, "node state changed");
        self.meta.state = state;
        if let Err(error) = self.broadcast_meta() {
            tracing::warn!(%error, "cannot broadcast node state change");
        }
        // Push it out now instead of waiting for the next periodic gossip.
        if let Err(error) = self.foca.gossip(&mut self.rt) {
            tracing::debug!(%error, "gossip after state change failed");
        }
    }

    async fn leave(&mut self) {
        if let Err(error) = self.foca.leave_cluster(&mut self.rt) {
            tracing::warn!(%error, "leaving the cluster failed");
        }
        self.send_outbox().await;
        tracing::info!("left the gossip cluster");
    }

    /// Queues a new version of our metadata for dissemination.
    fn broadcast_meta(&mut self) -> Result<(), String> {
        self.meta_seq += 1;
        let data = encode_announcement(self.foca.identity().boot, self.meta_seq, &self.meta)
            .map_err(|e| e.to_string())?;
        self.foca.add_broadcast(&data).map_err(|e| e.to_string())?;
        self.meta_sent_at = Instant::now();
        Ok(())
    }

    /// Sends our pending broadcasts (which include our metadata, just re-queued by the
    /// caller) directly to each newcomer, through foca's `Broadcast` message.
    fn push_meta_to(&mut self, newcomers: Vec<NodeIdentity>) {
        for newcomer in newcomers {
            if self.foca.custom_broadcast_backlog() == 0 {
                // Earlier pushes used up the transmissions: queue a fresh version.
                if let Err(error) = self.broadcast_meta() {
                    tracing::warn!(%error, "cannot rebroadcast node metadata");
                    return;
                }
            }
            self.set_broadcast_target(Some(newcomer.addr));
            let result = self.foca.broadcast(&mut self.rt);
            self.set_broadcast_target(None);
            if let Err(error) = result {
                tracing::debug!(member = ?newcomer, %error, "metadata push failed");
            }
        }
    }

    fn set_broadcast_target(&self, target: Option<SocketAddr>) {
        *self
            .broadcast_target
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = target;
    }

    fn announce_to_seeds(&mut self) {
        for seed in &self.seeds {
            tracing::debug!(%seed, "announcing to seed");
            if let Err(error) = self
                .foca
                .announce(NodeIdentity::placeholder(*seed), &mut self.rt)
            {
                tracing::debug!(%seed, %error, "announce failed");
            }
        }
    }

    fn housekeeping(&mut self) {
        let self_addr = self.foca.identity().addr;
        if self.foca.num_members() == 0 {
            // Alone: keep knocking until someone answers (nodes may start in any order,
            // and a partition may have left us on our own).
            self.announce_to_seeds();
            let down: Vec<NodeIdentity> = self
                .foca
                .iter_membership_state()
                .filter(|m| m.state() == State::Down && m.id().addr != self_addr)
                .filter(|m| !self.seeds.contains(&m.id().addr))
                .take(MAX_DOWN_ANNOUNCES)
                .map(|m| m.id().clone())
                .collect();
            for id in down {
                if let Err(error) = self.foca.announce(id, &mut self.rt) {
                    tracing::debug!(%error, "announce to down member failed");
                }
            }
        }

        self.reprobe_overdue_suspects();

        if self.meta_sent_at.elapsed() >= META_REFRESH_INTERVAL {
            if let Err(error) = self.broadcast_meta() {
                tracing::warn!(%error, "cannot refresh node metadata");
            }
        }

        // Forget what foca forgot, so memory stays bounded by the live cluster.
        let now = Instant::now();
        self.tracker.expire(now, self.remove_down_after);
        let mut keep: HashSet<u64> = self
            .foca
            .iter_membership_state()
            .map(|m| m.id().node_id)
            .chain(self.tracker.tombstoned())
            .collect();
        keep.insert(self.meta.node_id);
        let ttl = self.remove_down_after;
        lock_book(&self.book).retain(|node_id, record| {
            keep.contains(node_id) || now.saturating_duration_since(record.received_at) < ttl
        });
        self.rt
            .last_seen
            .retain(|_, at| now.saturating_duration_since(*at) < ttl);
    }

    /// Gives suspicions whose foca timer was dropped (see [`Tracker::overdue_suspects`]) a
    /// fresh start: the member is taken as Alive at the next incarnation, so the probe cycle
    /// decides again. A live member answers and stays; a dead one is suspected anew, with a
    /// timer, and declared Down a `suspect_to_down` later. Seen after a one-way cut healed:
    /// the cut-off node kept the Raft leader Suspect for 10 s while everyone else routed to it.
    fn reprobe_overdue_suspects(&mut self) {
        let limit = self.suspect_to_down.saturating_mul(2);
        for (id, incarnation) in self.tracker.overdue_suspects(Instant::now(), limit) {
            if self.down_deferrals.is_postponed(&id) {
                // Its timer is pending here, postponed on purpose: not a dropped one.
                continue;
            }
            tracing::info!(
                node_id = id.node_id,
                addr = %id.addr,
                incarnation,
                "suspicion outlived its timeout (foca dropped its timer); probing the member afresh"
            );
            let fresh = Member::new(id, incarnation.saturating_add(1), State::Alive);
            // Not broadcast: only our own, stuck, view is reset; the others never suspected.
            if let Err(error) = self
                .foca
                .apply_many(std::iter::once(fresh), false, &mut self.rt)
            {
                tracing::debug!(%error, "cannot reset an overdue suspicion");
            }
        }
    }

    async fn send_outbox(&mut self) {
        let mut outbox = std::mem::take(&mut self.rt.outbox);
        let delay_ms = self.shared.delay_ms.load(Ordering::Relaxed);
        let loss = self.shared.loss_percent.load(Ordering::Relaxed);
        for (to, packet) in outbox.drain(..) {
            if self.shared.is_blocked(to) {
                tracing::trace!(%to, "dropped datagram to blocked peer");
                continue;
            }
            if loss > 0 && self.loss_rng.random_range(0..100u64) < loss {
                tracing::trace!(%to, "dropped datagram (injected loss)");
                continue;
            }
            if delay_ms > 0 {
                // Sent later by its own task, so the loop goes on meanwhile. Unbounded on
                // purpose, like a slow link: at most one interval of gossip is in flight.
                let socket = self.socket.clone();
                let shared = self.shared.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    if socket.send_to(&packet, to).await.is_ok() {
                        bump(&shared.counters.packets_out, 1);
                    }
                });
                continue;
            }
            debug_assert!(packet.len() <= MAX_PACKET_SIZE.get() + FRAMING_OVERHEAD);
            match self.socket.send_to(&packet, to).await {
                Ok(_) => bump(&self.shared.counters.packets_out, 1),
                Err(error) => tracing::debug!(%to, %error, "gossip send failed"),
            }
        }
        // Hand the (empty) allocation back for reuse.
        if self.rt.outbox.is_empty() {
            self.rt.outbox = outbox;
        }
    }

    /// Acts on what the last interaction with foca produced: sends packets, handles
    /// notifications, derives events and republishes the member list.
    async fn after_interaction(&mut self) {
        let now = Instant::now();
        let mut rebroadcast = false;
        let mut newcomers = Vec::new();
        for notification in std::mem::take(&mut self.rt.notifications) {
            match notification {
                OwnedNotification::MemberUp(id) => {
                    tracing::debug!(member = ?id, "foca: member up");
                    // A newcomer needs our metadata, and earlier copies may have finished
                    // their transmissions already.
                    newcomers.push(id);
                }
                OwnedNotification::MemberDown(id) => {
                    tracing::debug!(member = ?id, "foca: member down");
                }
                OwnedNotification::Rename(old, new) => {
                    tracing::debug!(?old, ?new, "foca: member identity replaced");
                    self.tracker.renamed(&old, &new, now);
                    // A restarted member seen as a rename (its old identity was not down here
                    // yet) is a newcomer too: without a push it waits for the next announce
                    // (5 s) for our metadata.
                    newcomers.push(new);
                }
                OwnedNotification::Active => tracing::info!("joined the gossip cluster"),
                OwnedNotification::Idle => {
                    // foca drops its timers here; so do the postponed verdicts.
                    self.down_deferrals.clear();
                    self.rt.token = None;
                    tracing::info!("no live gossip peers; announcing to seeds until one answers");
                }
                OwnedNotification::Rejoin(id) => {
                    tracing::info!(identity = ?id, "declared down by the cluster; rejoined with a renewed identity");
                    bump(&self.shared.counters.identity_renewals, 1);
                    // A new identity: foca ignores every timer submitted before it.
                    self.down_deferrals.clear();
                    self.rt.token = None;
                    // Metadata versions are tied to the boot stamp, which just changed.
                    rebroadcast = true;
                }
                OwnedNotification::Defunct => {
                    self.down_deferrals.clear();
                    self.rt.token = None;
                    tracing::warn!("declared down by the cluster and cannot rejoin");
                }
                other => tracing::trace!(notification = ?other, "foca notification"),
            }
        }
        if rebroadcast || !newcomers.is_empty() {
            if let Err(error) = self.broadcast_meta() {
                tracing::warn!(%error, "cannot rebroadcast node metadata");
            }
        }
        self.push_meta_to(newcomers);
        self.send_outbox().await;

        let identity = self.foca.identity().clone();
        let members: Vec<Member<NodeIdentity>> = self
            .foca
            .iter_membership_state()
            // Our own previous identities (after a renew) are not "other members".
            .filter(|m| m.id().addr != identity.addr)
            .cloned()
            .collect();
        let (changes, entries) = {
            let book = lock_book(&self.book);
            let changes = self
                .tracker
                .reconcile(&members, &book, &self.rt.last_seen, now);
            let entries = self.tracker.entries(&members, &book, &self.rt.last_seen);
            (changes, entries)
        };

        {
            let mut published = self.shared.published();
            published.me = MemberView {
                node_id: identity.node_id,
                gossip_addr: identity.addr,
                meta: Some(self.meta.clone()),
                status: MemberStatus::Alive,
                incarnation: self.rt.incarnation.into(),
                boot: identity.boot,
                last_seen_ms_ago: None,
                is_self: true,
            };
            published.others = entries;
        }

        let counters = &self.shared.counters;
        bump(&counters.suspect_events, changes.suspected);
        for event in changes.events {
            match &event {
                MemberEvent::Up(_) => bump(&counters.up_events, 1),
                MemberEvent::Down(_) => bump(&counters.down_events, 1),
                MemberEvent::Updated(_) => {}
            }
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(event)) => {
                    bump(&counters.events_dropped, 1);
                    tracing::warn!(
                        ?event,
                        "membership event channel full; event dropped (members() stays accurate)"
                    );
                }
                // Nobody listens: fine, members() is the source of truth.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}

/// Fuzzing hook (`fuzz/fuzz_targets/gossip_packet.rs`), not an API: runs `datagrams`, in
/// order, through the receive path of one fresh agent keyed with `secret`, without a
/// socket: the HMAC check of `PacketAuth::open`, then foca's `handle_data` (header, member
/// updates, metadata broadcasts), as `Agent::on_datagram` does. The agent is node 1 at
/// `127.0.0.1:7946` with boot stamp 1 (foca only acts on packets addressed to that
/// identity) and a fixed RNG seed, so a run is reproducible. Returns how many datagrams
/// passed authentication.
#[doc(hidden)]
pub fn decode_for_fuzz(secret: &[u8], datagrams: &[&[u8]]) -> usize {
    let auth = match PacketAuth::new(secret, Legacy::Off) {
        Ok(auth) => auth,
        Err(_) => return 0,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], 7946));
    let meta = NodeMeta {
        node_id: 1,
        http_addr: "127.0.0.1:8080".to_owned(),
        raft_addr: "127.0.0.1:8081".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        state: NodeState::Active,
        cluster_addr: String::new(),
        features: Vec::new(),
    };
    let cfg = MembershipConfig::lan_defaults(1, addr, secret.to_vec(), meta);
    let mut foca: Swim = Foca::with_custom_broadcast(
        NodeIdentity {
            node_id: 1,
            addr,
            boot: 1,
        },
        cfg.foca_config(),
        SmallRng::seed_from_u64(1),
        PostcardCodec,
        MetaHandler::new(MetaBook::default(), BroadcastTarget::default()),
    );
    let mut rt = LoopRuntime::new(auth);
    let mut authentic = 0;
    for datagram in datagrams {
        if let Ok(payload) = rt.auth.open(datagram, unix_ms()) {
            authentic += 1;
            // The loop logs and drops what foca refuses; only a panic is a bug here.
            let _ = foca.handle_data(&payload, &mut rt);
        }
    }
    authentic
}

/// Fuzzing hook, not an API: `payload` framed and tagged with `secret` as this node sends
/// it (`None` only if HMAC refused the key, which it never does).
#[doc(hidden)]
pub fn seal_for_fuzz(secret: &[u8], payload: &[u8]) -> Option<Vec<u8>> {
    PacketAuth::new(secret, Legacy::Off)
        .ok()
        .map(|mut auth| auth.seal(payload, unix_ms()))
}
