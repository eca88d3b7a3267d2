//! The node's data directory: `raft/` (sled), `node-id`, and `admin-token` when generated.

use crate::config::ConfigError;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the file holding a generated admin token (mode 0600).
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Creates the directory if needed and checks it is writable.
pub fn prepare(dir: &Path) -> Result<(), ConfigError> {
    let err = |what: &str, e: std::io::Error| {
        ConfigError::new("data_dir", format!("{what} {}: {e}", dir.display()))
    };
    fs::create_dir_all(dir).map_err(|e| err("cannot create", e))?;
    let probe = dir.join(".write-check");
    fs::write(&probe, b"ok").map_err(|e| err("cannot write to", e))?;
    fs::remove_file(&probe).map_err(|e| err("cannot write to", e))?;
    Ok(())
}

/// The node's Raft id: read from `node-id`, or generated and stored on first start.
pub fn node_id(dir: &Path) -> Result<u64, ConfigError> {
    let path = dir.join("node-id");
    match fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|id| *id != 0)
            .ok_or_else(|| {
                ConfigError::new(
                    "data_dir",
                    format!(
                        "{} does not hold a node id; restore it or use an empty data dir",
                        path.display()
                    ),
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Ids are random so a wiped node that rejoins is a new member, not a ghost of the old one.
            let id = loop {
                let id: u64 = rand::random::<u64>() >> 1;
                if id != 0 {
                    break id;
                }
            };
            write_private(&path, &id.to_string()).map_err(|e| {
                ConfigError::new("data_dir", format!("cannot write {}: {e}", path.display()))
            })?;
            Ok(id)
        }
        Err(e) => Err(ConfigError::new(
            "data_dir",
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

/// Path of the admin token file.
pub fn admin_token_path(dir: &Path) -> PathBuf {
    dir.join(ADMIN_TOKEN_FILE)
}

/// Writes a file readable only by its owner, durably.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}
