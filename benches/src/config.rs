//! The cluster config values that drive failure detection and failover, for the report.
//! The benchmark passes no overrides, so the nodes run with their defaults; those are read
//! from `configs/single.toml` (which lists every key with its default and is kept in step
//! with the code by a unit test) when it can be found, else the documented defaults are
//! stated.

use std::path::{Path, PathBuf};

/// The keys reported, with the defaults documented when this benchmark was written.
const KEYS: [(&str, &str); 7] = [
    ("gossip.probe_period_ms", "500"),
    ("gossip.probe_rtt_ms", "250"),
    ("gossip.suspect_to_down_ms", "1000"),
    ("raft.heartbeat_ms", "100"),
    ("raft.election_timeout_min_ms", "300"),
    ("raft.election_timeout_max_ms", "600"),
    ("cluster.voter_down_grace_ms", "30000"),
];

/// The values and where they came from.
#[derive(Debug, Clone)]
pub struct Driving {
    /// A file path, or a sentence saying the documented defaults are stated.
    pub source: String,
    /// `(key, value)` in [`KEYS`] order.
    pub values: Vec<(String, String)>,
    /// Set when the file is newer than the binary: the binary may have other defaults.
    pub warning: Option<String>,
}

/// Finds `configs/single.toml` in the working directory or in the workspace the `colony`
/// binary was built in (`<workspace>/target/<profile>/colony`), and reads the keys.
pub fn load(colony_bin: &Path) -> Driving {
    let mut candidates = vec![PathBuf::from("configs/single.toml")];
    if let Some(ws) = colony_bin
        .canonicalize()
        .ok()
        .and_then(|p| p.ancestors().nth(3).map(Path::to_path_buf))
    {
        candidates.push(ws.join("configs/single.toml"));
    }
    for path in candidates {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let found = parse(&text);
            let values = KEYS
                .iter()
                .map(|(k, default)| {
                    let v = found
                        .iter()
                        .find(|(fk, _)| fk == k)
                        .map_or_else(|| format!("{default} (not in file)"), |(_, v)| v.clone());
                    (k.to_string(), v)
                })
                .collect();
            let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            let warning = match (modified(&path), modified(colony_bin)) {
                (Some(file), Some(bin)) if file > bin => Some(format!(
                    "{} is newer than {}: the binary may have been built with other defaults; rebuild it",
                    path.display(),
                    colony_bin.display()
                )),
                _ => None,
            };
            return Driving {
                source: path.display().to_string(),
                values,
                warning,
            };
        }
    }
    Driving {
        source: "documented defaults (configs/single.toml not found)".into(),
        values: KEYS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        warning: None,
    }
}

/// A minimal reader of the flat `[section]` / `key = value` TOML that `single.toml` is:
/// returns `section.key` and the value as written (quotes kept off).
fn parse(text: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            let key = if section.is_empty() {
                k.trim().to_string()
            } else {
                format!("{section}.{}", k.trim())
            };
            out.push((key, v.trim().trim_matches('"').to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_and_comments() {
        let text = "data_dir = \"./x\" # where\n[gossip]\n# c\nprobe_period_ms = 500\n[raft]\nheartbeat_ms = 100 # hb\n";
        let got = parse(text);
        assert_eq!(
            got,
            vec![
                ("data_dir".to_string(), "./x".to_string()),
                ("gossip.probe_period_ms".to_string(), "500".to_string()),
                ("raft.heartbeat_ms".to_string(), "100".to_string()),
            ]
        );
    }
}
