//! A TLS listener for `axum::serve`: TCP connections are accepted in a task of their
//! own and each handshake runs in its own task, bounded in number (overall and per
//! client address) and in time, so a client that stalls its handshake holds one slot for
//! at most the timeout and never the accept loop.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Bounds of the handshakes in flight.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Handshakes in flight at once; more connections are closed at once.
    pub max_in_flight: usize,
    /// Handshakes in flight from one client: an IPv4 address or an IPv6 /64 (what one
    /// host usually gets).
    pub max_per_ip: usize,
    /// Longest a handshake may take.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            max_per_ip: 64,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Counts of what became of accepted connections (for metrics).
#[derive(Debug, Default)]
pub struct HandshakeStats {
    /// Handshakes completed.
    pub completed: AtomicU64,
    /// Handshakes that failed (not TLS, bad certificate, no common suite).
    pub failed: AtomicU64,
    /// Handshakes that took longer than the timeout.
    pub timed_out: AtomicU64,
    /// Connections closed unhandshaken because the limits were reached.
    pub refused: AtomicU64,
}

/// A listener whose connections are TLS streams that completed their handshake.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
    stats: Arc<HandshakeStats>,
}

impl TlsListener {
    /// Accepts on `tcp` with `config` (its resolver may change certificates at will).
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        limits: Limits,
    ) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let stats = Arc::new(HandshakeStats::default());
        // Completed handshakes waiting for axum: the in-flight bound bounds them too.
        let (tx, ready) = mpsc::channel(64);
        let accepting = tokio::spawn(accept_loop(
            tcp,
            TlsAcceptor::from(config),
            limits,
            tx,
            stats.clone(),
        ));
        Ok(Self {
            ready,
            local,
            accepting,
            stats,
        })
    }

    /// What became of the connections so far.
    pub fn stats(&self) -> Arc<HandshakeStats> {
        self.stats.clone()
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// What a connection showed at its handshake, for handlers (axum's `ConnectInfo`): the
/// peer's address and the client certificate it presented, which the server config has
/// verified (none on plain connections or without client authentication).
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The peer's address.
    pub addr: SocketAddr,
    /// Its end-entity certificate, when it presented one.
    pub cert: Option<Arc<rustls::pki_types::CertificateDer<'static>>>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for PeerInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        let cert = stream
            .io()
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| Arc::new(c.clone().into_owned()));
        Self {
            addr: *stream.remote_addr(),
            cert,
        }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for PeerInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        Self {
            addr: *stream.remote_addr(),
            cert: None,
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop ended (it only does when aborted): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Handshakes in flight per client (IPv4 address or IPv6 /64), bounded.
#[derive(Debug, Clone)]
pub struct ClientSlots {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max: usize,
}

impl ClientSlots {
    /// At most `max` slots per client.
    pub fn new(max: usize) -> Self {
        Self {
            counts: Arc::default(),
            max,
        }
    }

    /// A slot for `ip`'s client, or `None` when it holds `max` already.
    pub fn take(&self, ip: IpAddr) -> Option<ClientSlot> {
        let key = client_key(ip);
        let mut map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            key,
            counts: self.counts.clone(),
        })
    }
}

/// A client's slot, released when dropped (however the handshake ends).
#[derive(Debug)]
pub struct ClientSlot {
    key: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// Whose slots a connection takes: its IPv4 address (also when IPv4-mapped), or its IPv6
/// /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    limits: Limits,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    stats: Arc<HandshakeStats>,
) {
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    let per_client = ClientSlots::new(limits.max_per_ip);
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Some(slot) = per_client.take(peer.ip()) else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (acceptor, ready, stats) = (acceptor.clone(), ready.clone(), stats.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let handshake = tokio::time::timeout(limits.timeout, acceptor.accept(stream)).await;
            drop(slot);
            match handshake {
                Ok(Ok(tls)) => {
                    stats.completed.fetch_add(1, Ordering::Relaxed);
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    stats.timed_out.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "TLS handshake timed out");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_64_is_one_client_and_mapped_ipv4_is_its_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(
            client_key(mapped),
            "10.0.0.1".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn per_ip_slots_are_bounded_and_released() {
        let slots = ClientSlots::new(2);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let a = slots.take(ip).expect("first");
        let _b = slots.take(ip).expect("second");
        assert!(slots.take(ip).is_none());
        assert!(slots.take([10, 0, 0, 2].into()).is_some());
        drop(a);
        assert!(slots.take(ip).is_some());
    }
}
