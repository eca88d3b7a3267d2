//! What a node does once per cluster and once per start with secrets: reading the admin
//! token and the operator's credentials (then scrubbing them from the environment), the
//! node's local secret, and initialising a new cluster (admin token hash, default tiers)
//! through Raft.

use crate::config::{Config, ConfigError};
use crate::datadir;
use crate::error::RunError;
use colony_cluster::RaftNode;
use colony_core::apikey::{generate_admin_token, hash_secret, secret_matches, MIN_ADMIN_TOKEN_LEN};
use colony_core::command::{Command, Proposal, ProposalMeta};
use colony_core::tier::default_tiers;
use colony_evaluator::OperatorCredential;
use std::time::Duration;

/// This node's own secret when no cluster secret is configured: generated once and
/// kept in the data dir (0600).
pub fn local_secret(dir: &std::path::Path) -> Result<String, ConfigError> {
    let path = dir.join("local-secret");
    let err = |e: std::io::Error| {
        ConfigError::new("data_dir", format!("cannot use {}: {e}", path.display()))
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => Ok(s.trim().to_string()),
        Ok(_) => Err(ConfigError::new(
            "data_dir",
            format!(
                "{} is too short; delete it to generate a new one",
                path.display()
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = hex::encode(rand::random::<[u8; 32]>());
            datadir::write_private(&path, &s).map_err(err)?;
            Ok(s)
        }
        Err(e) => Err(err(e)),
    }
}

/// A new cluster gets its admin token hash and default tiers through Raft, proposed by the
/// leader; every node then checks `COLONY_ADMIN_TOKEN` against the cluster's, so a mismatch
/// is reported at start rather than silently refused later.
pub async fn ensure_cluster_initialised(
    raft: &RaftNode,
    dir: &std::path::Path,
    env_token: Option<String>,
) -> Result<(), RunError> {
    let token_file = datadir::admin_token_path(dir);
    loop {
        if let Some(hash) = raft.read_state(|s| s.admin_token_hash.clone()) {
            report_admin_token(&hash, env_token.as_deref(), &token_file);
            return Ok(());
        }
        let status = raft.status();
        if status.leader == Some(status.node_id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (token, generated) = match env_token.clone() {
        Some(t) => (t, false),
        None => (generate_admin_token(), true),
    };
    if generated {
        datadir::write_private(&token_file, &token).map_err(|e| {
            ConfigError::new(
                "data_dir",
                format!("cannot write {}: {e}", token_file.display()),
            )
        })?;
    }
    let proposal = Proposal::new(
        ProposalMeta {
            at_ms: colony_core::clock::now_ms(),
            principal: format!("node:{}", raft.node_id()),
            request_id: colony_core::ids::random_request_id(),
        },
        Command::InitCluster {
            admin_token_hash: hash_secret(&token),
            tiers: default_tiers(colony_core::clock::now_ms()),
        },
    );
    match raft.write(proposal).await {
        Ok(_) => {}
        // Initialised concurrently (e.g. by a previous leader): keep the cluster's token.
        Err(colony_cluster::WriteError::Rejected(_)) => {
            if generated {
                let _ = std::fs::remove_file(&token_file);
            }
        }
        Err(e) => return Err(anyhow::anyhow!("initialising the cluster: {e}").into()),
    }
    match raft.read_state(|s| s.admin_token_hash.clone()) {
        Some(hash) => {
            report_admin_token(&hash, env_token.as_deref(), &token_file);
            Ok(())
        }
        None => Err(
            anyhow::anyhow!("the cluster is still not initialised after the init command").into(),
        ),
    }
}

/// Logs how to authenticate as admin, and loudly when `COLONY_ADMIN_TOKEN` is not the
/// cluster's token. Never logs a token.
fn report_admin_token(hash: &str, env_token: Option<&str>, token_file: &std::path::Path) {
    let stored = token_file
        .exists()
        .then(|| token_file.display().to_string());
    match (env_token, stored) {
        (Some(t), stored) if !secret_matches(t, hash) => tracing::error!(
            "COLONY_ADMIN_TOKEN differs from this cluster's admin token: requests with it will get 401. \
             The cluster keeps the token it was created with{}",
            stored.map(|p| format!(" (stored in {p})")).unwrap_or_default()
        ),
        (Some(_), _) => tracing::info!("admin token: COLONY_ADMIN_TOKEN (matches the cluster's; only its hash is stored)"),
        (None, Some(p)) => {
            tracing::info!("admin token: in {p} (mode 0600) — authenticate with `Authorization: Bearer $(cat {p})`")
        }
        (None, None) => tracing::info!(
            "admin token: the one this cluster was created with (in the admin-token file of the node that \
             initialised it, or the COLONY_ADMIN_TOKEN it was started with)"
        ),
    }
}

/// The node's own secrets, read once before the async runtime starts.
#[derive(Default)]
pub struct Secrets {
    /// `COLONY_ADMIN_TOKEN`, if set.
    pub admin_token: Option<String>,
    /// The operator's provider credentials with their values.
    pub operator_credentials: Vec<OperatorCredential>,
    /// Why the secret values could not be zeroed in `/proc/self/environ`, if they could not.
    pub environ_wipe_error: Option<std::io::Error>,
}

/// Reads the admin token and the operator's credentials, checks them, and removes every
/// secret variable from the process environment, so nothing later (no tenant-controlled
/// path, no child process) can read them. Call before any thread is started.
pub fn take_secrets(config: &Config) -> Result<Secrets, ConfigError> {
    let admin_token = admin_token_from_env()?;
    if let Some(t) = &admin_token {
        crate::secrets::check_secret("COLONY_ADMIN_TOKEN", t)?;
    }
    let operator_credentials = config
        .load_operator_credentials()?
        .into_iter()
        .map(|c| OperatorCredential {
            name: c.name,
            value: c.value,
            allowed_hosts: c.allowed_hosts,
            tenants: c.tenants,
            ca_pem: c.ca_pem,
        })
        .collect();
    let names = config.secret_env_names();
    let environ_wipe_error =
        crate::secrets::scrub_env(&names.iter().map(String::as_str).collect::<Vec<_>>()).err();
    Ok(Secrets {
        admin_token,
        operator_credentials,
        environ_wipe_error,
    })
}

/// `COLONY_ADMIN_TOKEN`, checked before anything is written.
fn admin_token_from_env() -> Result<Option<String>, ConfigError> {
    match std::env::var("COLONY_ADMIN_TOKEN") {
        Ok(t) if t.len() < MIN_ADMIN_TOKEN_LEN => Err(ConfigError::new(
            "COLONY_ADMIN_TOKEN",
            format!("must be at least {MIN_ADMIN_TOKEN_LEN} characters"),
        )),
        Ok(t) if t.chars().any(|c| c.is_whitespace() || c.is_control()) => Err(ConfigError::new(
            "COLONY_ADMIN_TOKEN",
            "must not contain spaces or control characters",
        )),
        Ok(t) => Ok(Some(t)),
        Err(_) => Ok(None),
    }
}
