//! The baselines Colony is measured against, each run as its own process (a subcommand of
//! this binary, so it does not share the load generator's runtime), plus `redis-server`.
//!
//! - [`bare`]: the ceiling, an axum handler answering a constant JSON body;
//! - [`redis_limiter`]: what users pick today, an axum service doing the same token-bucket
//!   check in Redis with one Lua script (EVALSHA) per item.

pub mod bare;
pub mod redis_limiter;

use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Child,
}

impl Proc {
    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The line a baseline server prints on stdout once it listens.
pub const LISTENING: &str = "listening ";

/// Builds the app with `app` (inside the server's runtime), binds `listen`, prints
/// `listening <addr>` on stdout, and serves until killed.
pub fn serve<F>(listen: &str, app: F) -> Result<()>
where
    F: std::future::Future<Output = Result<axum::Router>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let app = app.await?;
        let l = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = l.local_addr()?;
        let mut out = std::io::stdout();
        writeln!(out, "{LISTENING}{addr}")?;
        out.flush()?;
        axum::serve(l, app).await?;
        Ok(())
    })
}

/// Starts this binary with `args` (a `serve-*` subcommand) and waits (bounded) for the
/// address it prints.
pub fn spawn_self(label: &str, args: &[String], wait: Duration) -> Result<(Proc, String)> {
    let exe = std::env::current_exe().context("locating colony-bench")?;
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {label}"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("stdout not piped"))?;
    let proc = Proc { child };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if let Some(addr) = line.strip_prefix(LISTENING) {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(wait)
        .map_err(|_| anyhow!("{label} did not print its address within {wait:?}"))?;
    Ok((proc, addr))
}

/// A free loopback TCP port (bound and released; racy but fine on a bench machine).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Starts `redis-server` on a free loopback port without persistence and waits until it
/// answers `PING`.
pub fn spawn_redis(bin: &str, wait: Duration) -> Result<(Proc, String)> {
    let port = free_port()?;
    let child = Command::new(bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {bin} (apt-get install -y redis-server)"))?;
    let proc = Proc { child };
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + wait;
    loop {
        if ping(&addr).is_ok() {
            return Ok((proc, addr));
        }
        if Instant::now() > deadline {
            bail!("redis-server did not answer PING on {addr} within {wait:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ping(addr: &str) -> Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    s.write_all(b"PING\r\n")?;
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf)?;
    if &buf != b"+PONG\r\n" {
        bail!("unexpected answer {:?}", String::from_utf8_lossy(&buf));
    }
    Ok(())
}
