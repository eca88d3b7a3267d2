//! The Python environment Colony's reference tests compare against: a virtualenv under the
//! target directory (`target/python-reference`), built from the pinned
//! `tests/reference/requirements*.txt` with the machine's `python3` on first use and reused
//! afterwards, so `cargo nextest run --workspace` needs no set-up step of its own.
//!
//! The environment is rebuilt when the requirement files or the Python version change (the
//! stamp file holds both). Test processes that start at once (nextest runs each test in its
//! own process) wait on a file lock while one of them provisions.
//! `COLONY_SKIP_PYTHON_REFERENCE=1` skips the reference tests; they say so in their output.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The variable that skips the reference tests when set to `1`.
pub const SKIP_VAR: &str = "COLONY_SKIP_PYTHON_REFERENCE";

/// The pinned requirement files, relative to the workspace root.
const REQUIREMENTS: &[&str] = &[
    "tests/reference/requirements.txt",
    "tests/reference/requirements-stats.txt",
];

/// Why the reference environment could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A command could not be started.
    #[error("cannot run {command} ({source}); install Python 3 with venv and pip, or set {SKIP_VAR}=1 to skip the reference tests")]
    Spawn {
        /// The command line.
        command: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("{command} failed ({status}):\n{stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of what it wrote to stderr (and stdout).
        stderr: String,
    },
}

/// The workspace root (this crate sits at `crates/pyref`).
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Whether the caller asked to skip the reference tests.
pub fn skipped() -> bool {
    std::env::var(SKIP_VAR).as_deref() == Ok("1")
}

/// Runs `script` (relative to the workspace root) with `args` in the reference
/// environment, from the workspace root, and returns its stdout. Provisions the
/// environment first if it is missing or stale.
pub fn run_script(script: &str, args: &[String]) -> Result<String, Error> {
    let root = workspace_root();
    let python = provision(&root)?;
    let mut cmd = Command::new(&python);
    cmd.arg(root.join(script)).args(args).current_dir(&root);
    let out = output(&mut cmd, &format!("{} {script}", python.display()))?;
    String::from_utf8(out.stdout).map_err(|e| Error::Failed {
        command: script.to_string(),
        status: "ok".into(),
        stderr: format!("its output is not UTF-8: {e}"),
    })
}

/// The reference environment's interpreter, provisioning the environment if needed.
pub fn provision(root: &Path) -> Result<PathBuf, Error> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"));
    let venv = target.join("python-reference");
    let python = venv.join("bin").join("python");
    std::fs::create_dir_all(&target).map_err(|source| Error::Io {
        what: "creating",
        path: target.display().to_string(),
        source,
    })?;
    let lock_path = target.join("python-reference.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| Error::Io {
            what: "opening",
            path: lock_path.display().to_string(),
            source,
        })?;
    lock_file(&lock, &lock_path)?;

    let want = stamp(root)?;
    let stamp_path = venv.join("colony-stamp");
    if python.exists() && std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(&want) {
        return Ok(python);
    }
    eprintln!(
        "provisioning the Python reference environment in {} from {} (once; about a minute \
         on a fresh machine: it downloads the pinned packages from PyPI)",
        venv.display(),
        REQUIREMENTS.join(" and ")
    );
    if venv.exists() {
        std::fs::remove_dir_all(&venv).map_err(|source| Error::Io {
            what: "removing the stale",
            path: venv.display().to_string(),
            source,
        })?;
    }
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "venv"]).arg(&venv);
    output(&mut cmd, &format!("python3 -m venv {}", venv.display()))?;
    let mut cmd = Command::new(&python);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]);
    for r in REQUIREMENTS {
        cmd.arg("-r").arg(root.join(r));
    }
    output(&mut cmd, "pip install -r tests/reference/requirements*.txt")?;
    std::fs::write(&stamp_path, want).map_err(|source| Error::Io {
        what: "writing",
        path: stamp_path.display().to_string(),
        source,
    })?;
    eprintln!("the Python reference environment is ready");
    Ok(python)
}

/// Holds an exclusive lock on `file` until it is closed (also when the process dies).
fn lock_file(file: &File, path: &Path) -> Result<(), Error> {
    file.lock().map_err(|source| Error::Io {
        what: "locking",
        path: path.display().to_string(),
        source,
    })
}

/// What the environment is built from: the Python version and the requirement files.
fn stamp(root: &Path) -> Result<String, Error> {
    let version = output(
        Command::new("python3").arg("--version"),
        "python3 --version",
    )?;
    let mut s = String::from_utf8_lossy(&version.stdout).into_owned();
    for r in REQUIREMENTS {
        let path = root.join(r);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            what: "reading",
            path: path.display().to_string(),
            source,
        })?;
        s.push_str(&text);
    }
    Ok(s)
}

/// Runs `cmd`; an error unless it exits 0.
fn output(cmd: &mut Command, shown: &str) -> Result<Output, Error> {
    let out = cmd.output().map_err(|source| Error::Spawn {
        command: shown.to_string(),
        source,
    })?;
    if out.status.success() {
        return Ok(out);
    }
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    // The end holds the error; a pip or Python traceback can be long.
    let tail: String = text
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    Err(Error::Failed {
        command: shown.to_string(),
        status: out.status.to_string(),
        stderr: tail,
    })
}
