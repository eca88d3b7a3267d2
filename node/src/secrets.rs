//! The node's own secrets: refusing weak or shipped placeholder values, removing secret
//! variables from the process environment once they are read, and keeping the data dir
//! private to its owner (DESIGN.md "Security model": operator -> node).
//!
//! # How strong a secret must be
//! [`check_secret`] refuses, in this order:
//! 1. empty values, control characters, leading or trailing whitespace (a pasted newline
//!    makes nodes disagree on the secret);
//! 2. shipped placeholders: any value containing `change-me`/`changeme`/`change_me`
//!    (any case), `replace-me` or `placeholder`, and a few whole values that are words,
//!    not secrets (`secret`, `password`, `example`, `test`, ...);
//! 3. values shorter than [`MIN_SECRET_CHARS`] characters (32: what `openssl rand -hex 16`
//!    and `openssl rand -base64 24` print). Chosen text is far less random than its length
//!    suggests, and the estimate below cannot tell the two apart, so the floor is the
//!    length of the shortest random string the checks are meant to accept;
//! 4. values whose [`estimated_bits`] are under [`MIN_SECRET_BITS`] (128).
//!
//! The estimate is deliberately simple. It works on the shortest *unit* `u` of the value
//! (the shortest prefix the value repeats: `abcabcab` has the unit `abc`; a random value
//! is its own unit), and is the least of:
//! - `len(u) x log2(alphabet)`, the alphabet being the union of the character classes that
//!   occur (lowercase 26, uppercase 26, digits 10, anything else 33);
//! - `2 x len(u) x H(u)`, `H` being the Shannon entropy per character of `u`'s own character
//!   counts (bits), which punishes few distinct characters and uneven use of them;
//! - `2 x (len(u) - 1) x H(steps)`, the same over the differences between neighbouring code
//!   points, which punishes runs such as `abcdef...` or `0123...`.
//!
//! The factor 2 makes up for the Shannon estimate's low bias on short samples: 32 random hex
//! characters carry 128 bits but their sample entropy is usually 3.3-3.8 bits a character,
//! not 4. With it, 200 000 outputs each of `openssl rand -hex 16` and `-base64 24` all passed
//! (lowest estimates 145 and 171 bits), while `aaaa...` and `abab...` of any length, and
//! sequences, score near 0. It is a guard against placeholders, words and patterns typed by
//! hand, not a proof of randomness: a long passphrase of ordinary words passes.

use crate::config_error::ConfigError;
use std::collections::HashMap;
use std::path::Path;

/// Shortest accepted secret, in characters.
pub const MIN_SECRET_CHARS: usize = 32;

/// Least accepted [`estimated_bits`].
pub const MIN_SECRET_BITS: f64 = 128.0;

/// How to make a good secret, for error messages.
const HOW_TO_GENERATE: &str = "generate one with `openssl rand -hex 32`";

/// Parts that mark a shipped placeholder wherever they occur (compared lowercase, with
/// `-`, `_`, `.` and spaces removed).
const PLACEHOLDER_PARTS: &[&str] = &["changeme", "replaceme", "placeholder"];

/// Whole values (compared lowercase) that are words, not secrets. Most are also too short;
/// naming them gives a clearer message.
const PLACEHOLDER_VALUES: &[&str] = &[
    "secret", "password", "passwd", "example", "test", "testing", "admin", "token", "default",
    "colony", "changeit", "letmein", "none", "null", "todo", "xxx",
];

/// Refuses `value` as the secret `key` (`cluster.secret`, `COLONY_ADMIN_TOKEN`) when it is
/// a placeholder, too short or too predictable (see the module docs). The error names the
/// key and how to generate a good one, never the value.
pub fn check_secret(key: &str, value: &str) -> Result<(), ConfigError> {
    let refuse = |what: String| ConfigError::new(key, format!("{what}; {HOW_TO_GENERATE}"));
    if value.is_empty() {
        return Err(refuse("is empty".into()));
    }
    if value.chars().any(char::is_control) {
        return Err(refuse("contains control characters".into()));
    }
    if value.trim() != value {
        return Err(refuse(
            "starts or ends with whitespace (a pasted newline?)".into(),
        ));
    }
    if is_placeholder(value) {
        return Err(refuse(
            "is a placeholder (e.g. the CHANGE-ME value of a shipped example), not a secret".into(),
        ));
    }
    let chars = value.chars().count();
    if chars < MIN_SECRET_CHARS {
        return Err(refuse(format!(
            "is too short: {chars} characters, at least {MIN_SECRET_CHARS} needed"
        )));
    }
    let bits = estimated_bits(value);
    if bits < MIN_SECRET_BITS {
        return Err(refuse(format!(
            "is too predictable: about {} bits of entropy estimated, at least {} needed \
             (repeated or sequential characters count for little)",
            bits.floor() as u64,
            MIN_SECRET_BITS as u64
        )));
    }
    Ok(())
}

/// Whether `value` is a shipped placeholder or a bare word (see [`check_secret`]).
fn is_placeholder(value: &str) -> bool {
    let lower = value.to_lowercase();
    if PLACEHOLDER_VALUES.contains(&lower.trim()) {
        return true;
    }
    let squeezed: String = lower
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .collect();
    PLACEHOLDER_PARTS.iter().any(|p| squeezed.contains(p))
}

/// The entropy estimate of `value` in bits (see the module docs).
pub fn estimated_bits(value: &str) -> f64 {
    let chars: Vec<char> = value.chars().collect();
    let unit = &chars[..shortest_period(&chars)];
    if unit.is_empty() {
        return 0.0;
    }
    let n = unit.len() as f64;
    let by_classes = n * f64::from(alphabet_size(&chars)).log2();
    let by_counts = 2.0 * n * shannon(unit.iter().copied());
    let steps = unit
        .windows(2)
        .map(|w| i64::from(u32::from(w[1])) - i64::from(u32::from(w[0])));
    let by_steps = 2.0 * (n - 1.0) * shannon(steps);
    by_classes.min(by_counts).min(by_steps)
}

/// Size of the union of the character classes occurring in `chars`.
fn alphabet_size(chars: &[char]) -> u32 {
    let has = |f: fn(&char) -> bool| chars.iter().any(f);
    let mut size = 0;
    if has(char::is_ascii_lowercase) {
        size += 26;
    }
    if has(char::is_ascii_uppercase) {
        size += 26;
    }
    if has(char::is_ascii_digit) {
        size += 10;
    }
    if has(|c| !c.is_ascii_alphanumeric()) {
        size += 33;
    }
    size.max(1)
}

/// Shannon entropy per symbol (bits) of the symbols' own distribution.
fn shannon<T: std::hash::Hash + Eq>(symbols: impl Iterator<Item = T>) -> f64 {
    let mut counts: HashMap<T, u32> = HashMap::new();
    let mut total = 0u32;
    for s in symbols {
        *counts.entry(s).or_default() += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    let total = f64::from(total);
    counts
        .values()
        .map(|c| {
            let p = f64::from(*c) / total;
            -p * p.log2()
        })
        .sum()
}

/// Length of the shortest prefix of which `chars` is a prefix of a repetition (the KMP
/// failure function): 1 for `aaaa`, 2 for `ababa`, `chars.len()` for a random string.
fn shortest_period(chars: &[char]) -> usize {
    if chars.is_empty() {
        return 0;
    }
    let mut fail = vec![0usize; chars.len()];
    let mut k = 0;
    for i in 1..chars.len() {
        while k > 0 && chars[i] != chars[k] {
            k = fail[k - 1];
        }
        if chars[i] == chars[k] {
            k += 1;
        }
        fail[i] = k;
    }
    chars.len() - fail[chars.len() - 1]
}

/// Removes the named variables from the process environment.
///
/// Secrets are read from the environment once, at start, before the async runtime (and so
/// any other thread) exists; afterwards they live only in memory. Removing them means
/// that no later code path — in particular none a tenant can influence, such as a
/// provider config or template — can read them by name, and that child processes do not
/// inherit them. Call it before any thread is started: changing the environment while
/// another thread reads it is undefined behaviour on some platforms (which is why
/// `remove_var` is `unsafe` from edition 2024).
///
/// On Linux it also overwrites their values in the process's initial environment block,
/// the memory `/proc/PID/environ` shows, which `remove_var` leaves as it was; it returns
/// how many values it overwrote there, or why it could not (for the caller to log once
/// logging runs: the variables are gone from the environment either way).
pub fn scrub_env(names: &[&str]) -> std::io::Result<usize> {
    let names: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !n.is_empty() && !n.contains(['=', '\0']))
        .collect();
    for name in &names {
        std::env::remove_var(name);
    }
    #[cfg(target_os = "linux")]
    return wipe_initial_environ(&names);
    #[cfg(not(target_os = "linux"))]
    Ok(0)
}

/// Overwrites with zeros the values of `names` in the initial environment block, from
/// `env_start` (field 50 of `/proc/self/stat`) through `/proc/self/mem`. Only the values'
/// bytes change: no pointer into the block is moved, and after `remove_var` nothing reads
/// those entries any more. Returns how many values it overwrote.
#[cfg(target_os = "linux")]
fn wipe_initial_environ(names: &[&str]) -> std::io::Result<usize> {
    use std::io::{Seek, SeekFrom, Write};
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) may hold spaces and ')': fields resume after the last ')',
    // with field 3 first.
    let (_, rest) = stat
        .rsplit_once(')')
        .ok_or_else(|| bad("no ')' in /proc/self/stat"))?;
    let env_start: u64 = rest
        .split_whitespace()
        .nth(50 - 3)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| bad("no env_start in /proc/self/stat"))?;
    let block = std::fs::read("/proc/self/environ")?;
    let mut mem = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/mem")?;
    let mut at = 0u64;
    let mut wiped = 0;
    for entry in block.split(|b| *b == 0) {
        if let Some(eq) = entry.iter().position(|b| *b == b'=') {
            let value_len = entry.len() - eq - 1;
            if value_len > 0 && names.iter().any(|n| n.as_bytes() == &entry[..eq]) {
                mem.seek(SeekFrom::Start(env_start + at + eq as u64 + 1))?;
                mem.write_all(&vec![0u8; value_len])?;
                wiped += 1;
            }
        }
        at += entry.len() as u64 + 1;
    }
    Ok(wiped)
}

/// Keeps the data dir private to the node's user: sets the process umask to `0o077` (so
/// every file and directory created from now on — sled's files, the cache, tokens — has no
/// group or other permissions), then sets `dir` to `0o700` and, walking it, every directory
/// to `0o700` and every file to `0o600`, which fixes data dirs made by older versions.
///
/// `dir` itself is followed if it is a symlink (it is the operator's configured path);
/// symlinks inside it are neither followed nor changed. Sockets and other special files
/// are left alone. Entries owned by another user cannot be changed and are left as they
/// are, and directories among them are not entered: a Kubernetes volume's root is often
/// `root:<fsGroup>` 2775 and holds a root-owned `lost+found` (the node's own files in it are
/// still 0600 through the umask). Does nothing on non-Unix systems.
pub fn restrict_data_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::fs;
        use std::os::unix::fs::PermissionsExt;

        // The previous mask is not needed: nothing goes back to it.
        let _previous = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));

        let set_mode = |path: &Path, meta: &fs::Metadata, mode: u32| -> std::io::Result<()> {
            if meta.permissions().mode() & 0o7777 != mode {
                fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
            }
            Ok(())
        };
        let top = fs::metadata(dir)?;
        if !top.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not a directory", dir.display()),
            ));
        }
        if owned_by_current_user(&top) {
            set_mode(dir, &top, 0o700)?;
        }
        let mut pending = vec![dir.to_path_buf()];
        while let Some(current) = pending.pop() {
            for entry in fs::read_dir(&current)? {
                let path = entry?.path();
                let meta = match fs::symlink_metadata(&path) {
                    Ok(m) => m,
                    // Gone meanwhile (nothing else should run yet, but it is not ours to fail).
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                let kind = meta.file_type();
                if !owned_by_current_user(&meta) {
                    continue;
                }
                if kind.is_dir() {
                    set_mode(&path, &meta, 0o700)?;
                    pending.push(path);
                } else if kind.is_file() {
                    set_mode(&path, &meta, 0o600)?;
                }
                // Symlinks, sockets, fifos: left as they are.
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Whether the file described by `meta` belongs to the process's effective user (so its
/// mode can be changed).
#[cfg(unix)]
pub fn owned_by_current_user(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.uid() == rustix::process::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(value: &str) -> ConfigError {
        check_secret("cluster.secret", value).expect_err(value)
    }

    /// `openssl rand -base64 24`: 24 random bytes, standard alphabet (no padding needed).
    fn base64_24() -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let bytes: [u8; 24] = rand::random();
        bytes
            .chunks(3)
            .flat_map(|c| {
                let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
                (0..4u32)
                    .rev()
                    .map(move |i| ALPHABET[((n >> (6 * i)) & 63) as usize] as char)
            })
            .collect()
    }

    #[test]
    fn random_secrets_are_accepted() {
        // Outputs of `openssl rand -hex 16`, `-base64 24` and `-hex 32`.
        for s in [
            "9f2c4e7a1b3d5f60a8c2e4b6d8f01357",
            "q3Zk8+Xv1pL0yR7/wN2bT5mH9sC4dF6e",
            "3f9c2a7b8e1d4f6a0b5c9e2d7a1f3b8c6e4d2a9f7b1c5e3d8a6f2b4c9e1d7a3f",
        ] {
            check_secret("cluster.secret", s).unwrap();
        }
        for _ in 0..20_000 {
            let hex16 = hex::encode(rand::random::<[u8; 16]>());
            assert!(check_secret("k", &hex16).is_ok(), "{hex16}");
            let b64 = base64_24();
            assert_eq!(b64.len(), 32);
            assert!(check_secret("k", &b64).is_ok(), "{b64}");
        }
        // What the node and `colony dev` generate.
        check_secret(
            "COLONY_ADMIN_TOKEN",
            &colony_core::apikey::generate_admin_token(),
        )
        .unwrap();
        check_secret("k", &hex::encode(rand::random::<[u8; 24]>())).unwrap();
    }

    #[test]
    fn placeholders_are_refused() {
        for s in [
            "CHANGE-ME-cluster-secret-please-0123456789",
            "CHANGE-ME-at-least-16-characters",
            "CHANGE-ME-cluster-secret-at-least-16-chars",
            "CHANGE-ME-admin-token-at-least-16-chars",
            "9f2c4e7a1b3d5f60a8c2e4b6d8f01357changeme",
            "please_Change_Me_9f2c4e7a1b3d5f60a8c2e4b6d8f01357",
            "replace-me-9f2c4e7a1b3d5f60a8c2e4b6d8f01357",
            "secret",
            "Password",
            "example",
        ] {
            assert!(refused(s).problem.contains("placeholder"), "{s}");
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        for s in [
            "test-cluster-secret-0123456789",
            "test-admin-token-0123456789",
            "0123456789abcdef0123",
            "9f2c4e7a1b3d5f60a8c2e4b6d8f0135",
        ] {
            assert!(refused(s).problem.contains("too short"), "{s}");
        }
    }

    #[test]
    fn predictable_secrets_are_refused() {
        for n in 1..=600 {
            let s = "a".repeat(n);
            assert!(check_secret("k", &s).is_err(), "{n} a's");
            assert!(estimated_bits(&s) < 5.0);
        }
        for s in [
            "ab".repeat(100),
            "abc123".repeat(20),
            "0123456789abcdef".repeat(4),
            "abcdefghijklmnopqrstuvwxyz012345".to_string(),
            format!("{}b", "a".repeat(63)),
        ] {
            assert!(refused(&s).problem.contains("too predictable"), "{s}");
        }
    }

    #[test]
    fn malformed_secrets_are_refused() {
        let good = "9f2c4e7a1b3d5f60a8c2e4b6d8f01357";
        assert!(refused("").problem.contains("empty"));
        assert!(refused(&format!("{good}\n")).problem.contains("control"));
        assert!(refused(&format!(" {good}")).problem.contains("whitespace"));
    }

    #[test]
    fn errors_name_the_key_and_the_remedy_not_the_value() {
        let value = "test-cluster-secret-0123456789";
        let e = check_secret("cluster.secret", value).unwrap_err();
        assert_eq!(e.key, "cluster.secret");
        assert!(e.problem.contains("openssl rand -hex 32"), "{e}");
        assert!(!e.to_string().contains(value), "{e}");
        let e = check_secret("COLONY_ADMIN_TOKEN", &"x".repeat(40)).unwrap_err();
        assert_eq!(e.key, "COLONY_ADMIN_TOKEN");
        assert!(e.to_string().contains("openssl rand -hex 32"), "{e}");
    }

    #[test]
    fn periods() {
        let p = |s: &str| shortest_period(&s.chars().collect::<Vec<_>>());
        assert_eq!(p(""), 0);
        assert_eq!(p("aaaa"), 1);
        assert_eq!(p("ababa"), 2);
        assert_eq!(p("abcabcab"), 3);
        assert_eq!(p("abcd"), 4);
        assert_eq!(p("abca"), 3);
    }

    #[test]
    fn scrub_env_removes_the_variables() {
        let name = format!("COLONY_TEST_SCRUB_{}", std::process::id());
        std::env::set_var(&name, "value");
        // The variable was set after start: it is not in the initial block.
        let wiped = scrub_env(&[name.as_str(), "COLONY_TEST_SCRUB_NEVER_SET", "", "A=B"]);
        assert!(matches!(wiped, Ok(0)), "{wiped:?}");
        assert!(std::env::var_os(&name).is_none());
    }

    #[cfg(unix)]
    #[test]
    fn restrict_data_dir_fixes_modes_without_following_symlinks() {
        use std::fs;
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        let set = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();

        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let sub = data.join("raft").join("db");
        fs::create_dir_all(&sub).unwrap();
        fs::write(data.join("node-id"), "1").unwrap();
        fs::write(sub.join("conf"), "x").unwrap();
        let outside = root.path().join("outside");
        fs::write(&outside, "not ours").unwrap();
        std::os::unix::fs::symlink(&outside, data.join("link")).unwrap();
        set(&data, 0o755);
        set(&data.join("raft"), 0o775);
        set(&sub, 0o777);
        set(&data.join("node-id"), 0o644);
        set(&sub.join("conf"), 0o666);
        set(&outside, 0o644);

        restrict_data_dir(&data).unwrap();

        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("raft")), 0o700);
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(mode(&data.join("node-id")), 0o600);
        assert_eq!(mode(&sub.join("conf")), 0o600);
        assert_eq!(mode(&outside), 0o644, "the symlink's target is not ours");
        // The umask now keeps new files private too.
        fs::write(data.join("new"), "y").unwrap();
        assert_eq!(mode(&data.join("new")), 0o600 & 0o644);
        assert!(restrict_data_dir(&data.join("node-id")).is_err());
    }
}
