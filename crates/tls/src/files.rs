//! Writing certificate and key files: the new file is created beside its target with a
//! fresh name (`create_new`: never through an existing file or symlink), with its final
//! mode from the start (keys 0600), then linked into place, so a reader never sees half
//! a file and an existing file is replaced only when asked.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Mode of private keys.
pub const KEY_MODE: u32 = 0o600;
/// Mode of certificates.
pub const CERT_MODE: u32 = 0o644;

/// Writes `contents` to `path` with `mode`. Without `overwrite`, an existing `path` is
/// an `AlreadyExists` error and is left as it was.
pub fn write(path: &Path, contents: &[u8], mode: u32, overwrite: bool) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = dir.join(format!(
        ".{}.{:016x}.tmp",
        name.to_string_lossy(),
        rand::random::<u64>()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    drop(file);
    let placed = written.and_then(|()| {
        if overwrite {
            std::fs::rename(&tmp, path)
        } else {
            // A hard link fails if the target exists: no check-then-write race.
            std::fs::hard_link(&tmp, path).and_then(|()| std::fs::remove_file(&tmp))
        }
    });
    if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_0600_and_existing_files_are_kept_unless_asked() {
        let dir = tempfile::tempdir().expect("dir");
        let key = dir.path().join("node.key");
        write(&key, b"one", KEY_MODE, false).expect("write");
        let mode = std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = write(&key, b"two", KEY_MODE, false).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&key).expect("read"), b"one");
        write(&key, b"three", KEY_MODE, true).expect("overwrite");
        assert_eq!(std::fs::read(&key).expect("read"), b"three");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    #[test]
    fn a_symlink_at_the_target_is_not_written_through() {
        let dir = tempfile::tempdir().expect("dir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").expect("victim");
        let link = dir.path().join("ca.crt");
        std::os::unix::fs::symlink(&victim, &link).expect("link");
        assert!(write(&link, b"evil", CERT_MODE, false).is_err());
        write(&link, b"new", CERT_MODE, true).expect("rename replaces the link itself");
        assert_eq!(std::fs::read(&victim).expect("read"), b"keep");
    }
}
