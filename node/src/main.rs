//! The `colony` binary: one Colony node.
//!
//! # Layout
//! - [`certs`]: `colony certs`, creating the cluster CA, node and client certificates
//! - [`cli`]: flags and subcommands
//! - [`probe`]: `colony probe`, the container health check (HTTP or HTTPS)
//! - [`config`]: defaults, file, `COLONY_*` variables and flags into one checked config
//!   (serde structs; [`config_fields`] reads and checks each kind of value)
//! - [`datadir`]: the node's data directory: node id, admin token file, write check
//! - [`dev`]: `colony dev`, a local multi-node cluster of child processes
//! - [`secrets`]: secret strength checks, scrubbing them from the environment, data dir modes
//! - [`run`]: loading the config, logging, signals, and running a [`node::Node`]
//! - [`node`]: the node's lifecycle: start, serve, drain, shutdown; every task it spawns is
//!   tracked and joined
//! - [`components`]: starting each component (listeners, Raft, membership, rate limiter,
//!   evaluations, HTTP API)
//! - [`join`]: bootstrapping or joining a cluster
//! - [`bootstrap`]: the secrets a node starts with, the admin token, cluster initialisation
//! - [`view`]: the rate limiter's view of the cluster

mod bootstrap;
mod certs;
mod cli;
mod components;
mod config;
mod config_error;
mod config_fields;
mod datadir;
mod dev;
mod error;
mod join;
mod node;
mod probe;
mod run;
mod secrets;
mod signals;
mod supervised;
mod view;

use clap::Parser;
use std::process::ExitCode;

// glibc malloc/free took ~22% of CPU on the rate-limit hot path (benches/results/HISTORY.md);
// mimalloc's thread-local free lists avoid most of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // One crypto provider for every rustls user in the process (ring is in the tree too,
    // and a builder without an explicit provider would not know which to pick).
    let _ = colony_tls::rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = cli::Cli::parse();
    let args = match cli.command {
        Some(cli::Command::Node(args)) => args,
        Some(cli::Command::Dev(dev)) => {
            return match dev::run(&dev) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("colony dev: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(cli::Command::Certs(cmd)) => {
            return match certs::run(&cmd) {
                Ok(lines) => {
                    for line in lines {
                        println!("{line}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("colony certs: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(cli::Command::Probe(args)) => return probe::probe(&args),
        None => cli.node,
    };
    let config = match run::load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("colony: {e}");
            return ExitCode::from(2);
        }
    };
    // Before the runtime starts: no other thread may read the environment meanwhile.
    let secrets = match bootstrap::take_secrets(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("colony: {e}");
            return ExitCode::from(2);
        }
    };
    run::init_logging(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("colony: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(config, secrets)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error::RunError::Config(e)) => {
            tracing::error!("{e}");
            eprintln!("colony: {e}");
            ExitCode::from(2)
        }
        Err(error::RunError::Other(e)) => {
            tracing::error!("fatal: {e:#}");
            eprintln!("colony: {e:#}");
            ExitCode::FAILURE
        }
    }
}
