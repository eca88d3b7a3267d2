//! The node's data directory: `raft/` (sled), `node-id`, and `admin-token` when generated.

use crate::config::ConfigError;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the file holding a generated admin token (mode 0600).
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Mode of the data dir and of every directory in it.
pub const DIR_MODE: u32 = 0o700;

/// Mode of every file in the data dir.
pub const FILE_MODE: u32 = 0o600;

/// Creates the directory if needed (0700 whatever the umask; an existing one of this user
/// is set to 0700 too — one owned by another user, e.g. a Kubernetes volume's root, cannot
/// be and is left as it is) and checks it is writable.
pub fn prepare(dir: &Path) -> Result<(), ConfigError> {
    let err = |what: &str, e: std::io::Error| {
        ConfigError::new("data_dir", format!("{what} {}: {e}", dir.display()))
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir).map_err(|e| err("cannot create", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(dir).map_err(|e| err("cannot read", e))?;
        if crate::secrets::owned_by_current_user(&meta) {
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
                .map_err(|e| err("cannot restrict to its owner (chmod 0700)", e))?;
        }
    }
    let probe = dir.join(".write-check");
    write_private(&probe, "ok").map_err(|e| err("cannot write to", e))?;
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

/// Writes a file readable only by its owner (0600 whatever the umask), durably: through a
/// temporary file in the same directory, renamed over `path`, and the directory synced.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Applies only when the file is created, and through the umask...
        opts.mode(FILE_MODE);
    }
    let mut f = opts.open(&tmp)?;
    #[cfg(unix)]
    {
        // ...so set it exactly, also on a `.tmp` left (with other modes) by a crash, before
        // anything secret is written into it.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    }
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    #[cfg(unix)]
    {
        // The rename is durable once the directory is.
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn files_are_0600_and_the_dir_0700() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert!(!dir.join(".write-check").exists());

        let id = node_id(&dir).unwrap();
        assert_eq!(node_id(&dir).unwrap(), id, "the id is kept");
        assert_eq!(mode(&dir.join("node-id")), 0o600);

        // A stale temporary file with a wide mode does not keep that mode.
        let token = admin_token_path(&dir);
        let tmp = token.with_extension("tmp");
        fs::write(&tmp, "old").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o666)).unwrap();
        write_private(&token, "t0ken").unwrap();
        assert_eq!(mode(&token), 0o600);
        assert_eq!(fs::read_to_string(&token).unwrap(), "t0ken");
        assert!(!tmp.exists());

        let fresh = root.path().join("a").join("b");
        prepare(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
    }
}
