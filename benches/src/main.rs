//! `colony-bench`: Colony's load generator and benchmarks. Every benchmark drives real
//! `colony` node processes on loopback and reports its numbers side by side with the
//! baselines they are compared to, as ratios (never as timed assertions in tests).
//!
//! # Layout
//! - [`cluster`]: a cluster of real node processes (`colony-nodeproc`): start, wait until
//!   healthy, kill and restart in place
//! - [`config`]: the cluster config values that drive the numbers, for the report
//! - [`stats`]: medians, percentiles and table formatting
//! - [`failover`]: `colony-bench failover`, failure detection and failover times
//! - [`hist`]: a log-linear latency histogram
//! - [`load`]: the HTTP load generator (closed and open loop)
//! - [`ratelimit`]: `colony-bench ratelimit` and `ratelimit-memory`
//! - [`evaluations`]: `colony-bench evaluations`, cluster-wide evaluation throughput and
//!   the cost of Raft checkpoints
//! - [`attacks`]: `colony-bench attacks`, the hostile-tenant attacks before and after the
//!   defences
//! - [`baselines`]: the Redis + Lua limiter and the bare axum handler, as subcommands

mod attacks;
mod baselines;
mod cluster;
mod config;
mod evaluations;
mod failover;
mod hist;
mod load;
mod ratelimit;
mod stats;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Colony benchmarks against real node processes.
#[derive(Debug, Parser)]
#[command(name = "colony-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Kill -9 the Raft leader repeatedly and measure failure detection, leader election
    /// and the first successful write, against the defaults of Akka, Orleans, memberlist
    /// and etcd.
    Failover(failover::Args),
    /// Rate-limit checks: Colony on 1 and 3 nodes against a Redis + Lua limiter and a bare
    /// axum handler, side by side, as ratios.
    Ratelimit(ratelimit::Args),
    /// RSS of one Colony node before and after touching many distinct buckets.
    RatelimitMemory(ratelimit::MemArgs),
    /// Evaluations: cluster-wide cases per second with the builtin mock provider, at
    /// several checkpoint settings side by side (the cost of Raft checkpoints).
    Evaluations(evaluations::Args),
    /// The hostile-tenant attacks, each against a fresh node of the current binary and of
    /// one from before the defences, side by side: /healthz p99, peak RSS, and what
    /// reached the attacker.
    Attacks(attacks::Args),
    /// (Baseline process) the axum + Redis Lua token-bucket limiter.
    ServeRedisLimiter(baselines::redis_limiter::Args),
    /// (Baseline process) the bare axum handler with a constant answer.
    ServeBare(baselines::bare::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Failover(args) => failover::run(&args),
        Command::Ratelimit(args) => ratelimit::run(&args),
        Command::RatelimitMemory(args) => ratelimit::run_memory(&args),
        Command::Evaluations(args) => evaluations::run(&args),
        Command::Attacks(args) => attacks::run(&args),
        Command::ServeRedisLimiter(args) => baselines::redis_limiter::run(&args),
        Command::ServeBare(args) => baselines::bare::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("colony-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
