//! The load generator: N keep-alive HTTP/1.1 connections (hyper, one request in flight per
//! connection), closed loop (each connection sends its next request when the answer
//! arrives: peak throughput) or open loop (`rate` requests/s spread evenly over the
//! connections, each request on a fixed schedule, latency measured from the scheduled send
//! time so a slow server cannot hide its queueing: no coordinated omission).

use crate::hist::Histogram;
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the load goes.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port` of each node; connection `i` goes to `addrs[i % len]`.
    pub addrs: Vec<String>,
    /// Request path.
    pub path: String,
    /// The `Authorization` header value, if any.
    pub auth: Option<String>,
    /// The server's processes (every node, or service and store): their CPU time in the
    /// measured window is reported per answered check.
    pub server_pids: Vec<u32>,
    /// HTTPS with this client config (the nodes' CA), else plain HTTP.
    pub tls: Option<Arc<colony_tls::rustls::ClientConfig>>,
}

/// How much load, and of what.
#[derive(Debug, Clone)]
pub struct Load {
    /// Concurrent connections.
    pub connections: usize,
    /// Sent but not measured, before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Open loop at this many requests/s in total; `None` = closed loop.
    pub rate: Option<f64>,
    /// Keys are drawn uniformly from `k0 .. k<keys-1>`.
    pub keys: u64,
    /// The `limit` of every item (high, so checks stay under the limit).
    pub item_limit: u64,
    /// The `duration_ms` of every item.
    pub item_duration_ms: u64,
    /// RNG seed (each connection derives its own).
    pub seed: u64,
}

/// What one load run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Latency of answered requests (ns), within the measured window.
    pub hist: Histogram,
    /// Answers 200 with `under_limit`.
    pub under: u64,
    /// Answers 200 with `over_limit`.
    pub over: u64,
    /// Transport errors, other statuses, unexpected bodies.
    pub errors: u64,
    /// The first error seen.
    pub first_error: Option<String>,
    /// Length of the measured window.
    pub window: Duration,
    /// The open-loop rate, if any.
    pub rate: Option<f64>,
    /// Connections used.
    pub connections: usize,
    /// CPU time (user + system) the server's processes used in the measured window.
    pub server_cpu: Option<Duration>,
}

impl Outcome {
    /// Answered checks per second in the window.
    pub fn throughput(&self) -> f64 {
        (self.under + self.over) as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Server CPU microseconds per answered check: unlike throughput, barely moved by
    /// other load on a shared machine (it counts the work, not the waiting).
    pub fn cpu_us_per_check(&self) -> Option<f64> {
        let answered = self.under + self.over;
        self.server_cpu
            .filter(|_| answered > 0)
            .map(|c| c.as_secs_f64() * 1e6 / answered as f64)
    }

    fn merge(&mut self, o: Outcome) {
        self.hist.merge(&o.hist);
        self.under += o.under;
        self.over += o.over;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "mode": if self.rate.is_some() { "open" } else { "closed" },
            "target_rate": self.rate,
            "connections": self.connections,
            "throughput_rps": self.throughput().round(),
            "under_limit": self.under,
            "over_limit": self.over,
            "errors": self.errors,
            "first_error": self.first_error,
            "window_s": self.window.as_secs_f64(),
            "latency": self.hist.to_json_ms(),
        })
    }
}

/// xorshift64*: a tiny deterministic generator for key choice.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is negligible for small `n`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The body of one single-item check on key `k<key>`.
pub fn check_body(key: u64, limit: u64, duration_ms: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"requests":[{{"name":"bench","key":"k{key}","hits":1,"limit":{limit},"duration_ms":{duration_ms},"algorithm":"token_bucket"}}]}}"#
    ))
}

/// How an answer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 200 and `under_limit`.
    Under,
    /// 200 and `over_limit`.
    Over,
    /// Anything else.
    Bad,
}

/// Classifies an answer to a single-item check.
pub fn classify(status: u16, body: &[u8]) -> Verdict {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    if status != 200 {
        Verdict::Bad
    } else if has(b"\"over_limit\"") {
        Verdict::Over
    } else if has(b"\"under_limit\"") {
        Verdict::Under
    } else {
        Verdict::Bad
    }
}

/// One keep-alive connection.
pub type Conn = SendRequest<Full<Bytes>>;

/// Opens a keep-alive HTTP/1.1 connection (TCP_NODELAY), over TLS with `tls`.
pub async fn connect(
    addr: &str,
    tls: Option<&Arc<colony_tls::rustls::ClientConfig>>,
) -> Result<Conn, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let Some(tls) = tls else {
        return handshake(addr, stream).await;
    };
    let ip = addr
        .parse::<std::net::SocketAddr>()
        .map_err(|e| format!("{addr}: {e}"))?
        .ip();
    let name = colony_tls::rustls::pki_types::ServerName::IpAddress(ip.into());
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake {addr}: {e}"))?;
    handshake(addr, stream).await
}

async fn handshake<S>(addr: &str, stream: S) -> Result<Conn, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// `POST` on an open connection; `Err` only for transport failures.
pub async fn post(
    conn: &mut Conn,
    host: &str,
    path: &str,
    auth: Option<&str>,
    body: Bytes,
) -> Result<(u16, Bytes), String> {
    conn.ready().await.map_err(|e| e.to_string())?;
    let mut req = hyper::Request::post(path)
        .header(HOST, host)
        .header(CONTENT_TYPE, "application/json");
    if let Some(a) = auth {
        req = req.header(AUTHORIZATION, a);
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = conn.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// Open loop: at least one connection per this many requests/s, so that each connection
/// sends at most every 2 ms, above the 1 ms resolution of tokio's timer (more requests per
/// connection would queue behind each other in the client, not in the server).
pub const OPEN_RATE_PER_CONNECTION: f64 = 500.0;

/// The connections an open-loop run at `rate` uses: `min` or more.
pub fn open_connections(min: usize, rate: f64) -> usize {
    min.max((rate / OPEN_RATE_PER_CONNECTION).ceil() as usize)
}

/// A multi-threaded runtime for the load generator (one worker per core).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the load generator's runtime")
}

/// Runs `load` against `ep` and waits for it to finish.
pub fn run(rt: &tokio::runtime::Runtime, ep: &Endpoint, load: &Load) -> Result<Outcome> {
    let ep = Arc::new(ep.clone());
    let load = Arc::new(load.clone());
    rt.block_on(async move {
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(load.connections);
        for i in 0..load.connections {
            tasks.push(tokio::spawn(conn_task(i, ep.clone(), load.clone(), start)));
        }
        let cpu = tokio::spawn(window_cpu(
            ep.server_pids.clone(),
            start + load.warmup,
            start + load.warmup + load.duration,
        ));
        let mut out = Outcome {
            window: load.duration,
            rate: load.rate,
            connections: load.connections,
            ..Outcome::default()
        };
        for t in tasks {
            out.merge(t.await.context("a load task panicked")?);
        }
        out.server_cpu = cpu.await.ok().flatten();
        Ok(out)
    })
}

/// CPU time `pids` used between `from` and `to` (`None` if a process could not be read).
async fn window_cpu(pids: Vec<u32>, from: Instant, to: Instant) -> Option<Duration> {
    if pids.is_empty() {
        return None;
    }
    tokio::time::sleep_until(from.into()).await;
    let before = cpu_of(&pids)?;
    tokio::time::sleep_until(to.into()).await;
    let after = cpu_of(&pids)?;
    Some(after.saturating_sub(before))
}

/// Summed user + system CPU time of `pids`, from `/proc/<pid>/stat`.
fn cpu_of(pids: &[u32]) -> Option<Duration> {
    let mut ticks = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        ticks += stat_cpu_ticks(&stat)?;
    }
    Some(Duration::from_secs_f64(ticks as f64 / USER_HZ))
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line; the command name (field
/// 2) may hold spaces, so fields are counted after its closing parenthesis.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, i.e. index 11 here.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second of `/proc` times (`sysconf(_SC_CLK_TCK)`): Linux fixes it at 100
/// for user space whatever the kernel's own HZ.
const USER_HZ: f64 = 100.0;

async fn conn_task(i: usize, ep: Arc<Endpoint>, load: Arc<Load>, start: Instant) -> Outcome {
    let mut out = Outcome::default();
    let Some(addr) = ep.addrs.get(i % ep.addrs.len().max(1)) else {
        return out;
    };
    let from = start + load.warmup;
    let end = from + load.duration;
    let mut rng = Rng::new(load.seed ^ (i as u64).wrapping_mul(0x1000_0001));
    let interval = load
        .rate
        .map(|r| Duration::from_secs_f64(load.connections as f64 / r.max(1e-3)));
    // Connections start staggered by 1/rate so the sends are spread evenly.
    let mut next = start
        + load
            .rate
            .map(|r| Duration::from_secs_f64(i as f64 / r.max(1e-3)))
            .unwrap_or_default();
    let mut last_wake = start;
    let mut conn: Option<Conn> = None;
    loop {
        let intended = match interval {
            Some(iv) => {
                if next >= end {
                    break;
                }
                if Instant::now() < next {
                    tokio::time::sleep_until(next.into()).await;
                    last_wake = Instant::now();
                }
                let s = next;
                next += iv;
                s
            }
            None => {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                now
            }
        };
        if conn.is_none() {
            match connect(addr, ep.tls.as_ref()).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    note_error(&mut out, intended >= from, e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let body = check_body(rng.below(load.keys), load.item_limit, load.item_duration_ms);
        let sent = Instant::now();
        // Open loop: latency counts from the scheduled time, so a request that waited for
        // the previous answer on its connection counts that wait (no coordinated omission).
        // Only the timer's own lateness (tokio's 1 ms wheel) is left out: a request due
        // while the task slept counts from the moment it woke.
        let t0 = if interval.is_some() {
            intended.max(last_wake)
        } else {
            sent
        };
        let res = post(c, addr, &ep.path, ep.auth.as_deref(), body).await;
        let done = Instant::now();
        let counted = match interval {
            Some(_) => intended >= from,
            None => done >= from && done <= end,
        };
        match res {
            Ok((status, body)) => {
                let v = classify(status, &body);
                if !counted {
                    continue;
                }
                match v {
                    Verdict::Under => out.under += 1,
                    Verdict::Over => out.over += 1,
                    Verdict::Bad => {
                        note_error(
                            &mut out,
                            true,
                            format!("{status} {}", String::from_utf8_lossy(&body)),
                        );
                        continue;
                    }
                }
                let ns = u64::try_from(done.duration_since(t0).as_nanos()).unwrap_or(u64::MAX);
                out.hist.record(ns);
            }
            Err(e) => {
                conn = None;
                note_error(&mut out, counted, e);
            }
        }
    }
    out
}

fn note_error(out: &mut Outcome, counted: bool, e: String) {
    if counted {
        out.errors += 1;
        if out.first_error.is_none() {
            out.first_error = Some(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_answers() {
        let under = br#"{"responses":[{"status":"under_limit","limit":5}]}"#;
        let over = br#"{"responses":[{"status":"over_limit","limit":5}]}"#;
        assert_eq!(classify(200, under), Verdict::Under);
        assert_eq!(classify(200, over), Verdict::Over);
        assert_eq!(classify(401, under), Verdict::Bad);
        assert_eq!(
            classify(200, br#"{"responses":[{"error":"x"}]}"#),
            Verdict::Bad
        );
    }

    #[test]
    fn body_is_one_item_json() {
        let b = check_body(42, 1000, 60000);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["requests"][0]["key"], "k42");
        assert_eq!(v["requests"][0]["limit"], 1000);
        assert_eq!(v["requests"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn rng_is_deterministic_and_spreads() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<u64> = (0..1000).map(|_| a.below(10)).collect();
        let ys: Vec<u64> = (0..1000).map(|_| b.below(10)).collect();
        assert_eq!(xs, ys);
        for k in 0..10 {
            let n = xs.iter().filter(|&&x| x == k).count();
            assert!((50..150).contains(&n), "{k}: {n}");
        }
    }

    #[test]
    fn open_loop_connections_scale_with_rate() {
        assert_eq!(open_connections(32, 10_000.0), 32);
        assert_eq!(open_connections(32, 70_000.0), 140);
        assert_eq!(open_connections(1, 1.0), 1);
    }

    #[test]
    fn throughput_counts_answers_in_window() {
        let o = Outcome {
            under: 900,
            over: 100,
            window: Duration::from_secs(2),
            ..Outcome::default()
        };
        assert_eq!(o.throughput(), 500.0);
    }
}
