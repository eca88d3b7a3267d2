//! `colony-probe`: a tiny HTTP health probe for the `FROM scratch` image, which has no shell
//! and no curl. Built on its own with rustc (std only, no crates), statically linked:
//!
//!     rustc --edition 2021 -O -C target-feature=+crt-static \
//!         --target x86_64-unknown-linux-gnu deploy/probe/colony-probe.rs -o colony-probe
//!
//! Usage: `colony-probe [PATH] [ADDR]` — GET http://ADDR/PATH; exit 0 on a 2xx answer,
//! 1 otherwise (status line or error on stderr). PATH defaults to `/readyz`; ADDR defaults to
//! the port of `COLONY_HTTP_LISTEN` on 127.0.0.1 (so `0.0.0.0:8080` probes
//! `127.0.0.1:8080`), else `127.0.0.1:8080`. Total time is bounded by 3 s.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);

fn default_addr() -> String {
    let port = std::env::var("COLONY_HTTP_LISTEN")
        .ok()
        .and_then(|v| v.trim().parse::<SocketAddr>().ok())
        .map_or(8080, |a| a.port());
    format!("127.0.0.1:{port}")
}

fn probe(addr: &str, path: &str) -> Result<String, String> {
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("bad address {addr}"))?;
    let mut s = TcpStream::connect_timeout(&sock, TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: colony-probe\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    // The status line is all we need; read until it is complete (or the peer closes).
    while !buf.contains(&b'\n') && buf.len() < 8192 {
        let n = s.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().next().unwrap_or("").trim().to_string();
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {line:?}"))?;
    if (200..300).contains(&code) {
        Ok(line)
    } else {
        Err(line)
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/readyz".to_string());
    let addr = args.next().unwrap_or_else(default_addr);
    if path == "-h" || path == "--help" {
        println!("usage: colony-probe [PATH (default /readyz)] [ADDR (default 127.0.0.1:<port of COLONY_HTTP_LISTEN>)]");
        return ExitCode::SUCCESS;
    }
    match probe(&addr, &path) {
        Ok(line) => {
            println!("{addr}{path}: {line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{addr}{path}: {e}");
            ExitCode::FAILURE
        }
    }
}
