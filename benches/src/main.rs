//! `colony-bench`: Colony's load generator and benchmarks. Every benchmark drives real
//! `colony` node processes on loopback and reports its numbers side by side with the
//! baselines they are compared to, as ratios (never as timed assertions in tests).
//!
//! # Layout
//! - [`cluster`]: starting, killing and restarting real node processes (killed on drop)
//! - [`http`]: a small blocking HTTP client with short timeouts
//! - [`config`]: the cluster config values that drive the numbers, for the report
//! - [`stats`]: medians, percentiles and table formatting
//! - [`failover`]: `colony-bench failover`, failure detection and failover times

mod cluster;
mod config;
mod failover;
mod http;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Failover(args) => failover::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("colony-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
