//! `colony certs`: the cluster CA, node and client certificates, as files. Existing
//! files are kept unless `--overwrite`; keys are 0600; every certificate issued is
//! checked against `ca.crt` before anything is written.

use crate::cli::{CertsArgs, CertsCommand};
use colony_tls::certs::{self, Issued};
use colony_tls::files::{self, CERT_MODE, KEY_MODE};
use colony_tls::identity::{CA_FILE, NODE_CERT_FILE, NODE_KEY_FILE};
use std::path::{Path, PathBuf};

/// What went wrong, in words for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CertsError(String);

fn read(path: &Path, what: &str) -> Result<String, CertsError> {
    use std::io::Read;
    let failed =
        |e: std::io::Error| CertsError(format!("cannot read the {what} {}: {e}", path.display()));
    let mut text = String::new();
    // Bounded: a FIFO or a huge file is not read forever.
    std::fs::File::open(path)
        .map_err(failed)?
        .take(colony_tls::pem::MAX_PEM_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(failed)?;
    if text.len() > colony_tls::pem::MAX_PEM_BYTES {
        return Err(CertsError(format!(
            "{} is too large to be a {what}",
            path.display()
        )));
    }
    Ok(text)
}

fn write(path: &Path, text: &str, mode: u32, overwrite: bool) -> Result<(), CertsError> {
    files::write(path, text.as_bytes(), mode, overwrite).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CertsError(format!(
                "{} exists; it is kept (pass --overwrite to replace it)",
                path.display()
            ))
        } else {
            CertsError(format!("cannot write {}: {e}", path.display()))
        }
    })
}

/// Refuses before any key is generated, so a run that would fail writes nothing.
fn refuse_existing(paths: &[&Path], overwrite: bool) -> Result<(), CertsError> {
    if overwrite {
        return Ok(());
    }
    match paths.iter().find(|p| p.symlink_metadata().is_ok()) {
        Some(p) => Err(CertsError(format!(
            "{} exists; it is kept (pass --overwrite to replace it)",
            p.display()
        ))),
        None => Ok(()),
    }
}

/// Creates `dir` (and parents) with `mode` whatever the umask allows more of: a certs
/// directory others could write to would let them swap `ca.crt`.
fn create_dir(dir: &Path, mode: u32) -> Result<(), CertsError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| CertsError(format!("cannot create {}: {e}", dir.display())))
}

fn ca(common: &CertsArgs) -> Result<(String, String), CertsError> {
    let cert = read(&common.certs_dir.join(CA_FILE), "CA certificate")?;
    let key = read(&common.ca_key, "CA key")?;
    Ok((cert, key))
}

fn issued(e: colony_tls::TlsError) -> CertsError {
    CertsError(e.to_string())
}

/// Writes a certificate and its key (the certificate last: a reader that sees it new
/// finds its key already in place).
fn place(issued: &Issued, cert: &Path, key: &Path, overwrite: bool) -> Result<(), CertsError> {
    write(key, &issued.key_pem, KEY_MODE, overwrite)?;
    write(cert, &issued.cert_pem, CERT_MODE, overwrite)
}

/// Runs a `colony certs` subcommand; the lines to print on success.
pub fn run(cmd: &CertsCommand) -> Result<Vec<String>, CertsError> {
    match cmd {
        CertsCommand::CreateCa { common } => {
            let cert_path = common.certs_dir.join(CA_FILE);
            refuse_existing(&[&cert_path, &common.ca_key], common.overwrite)?;
            create_dir(&common.certs_dir, 0o755)?;
            if let Some(parent) = common.ca_key.parent().filter(|p| !p.as_os_str().is_empty()) {
                create_dir(parent, 0o700)?;
            }
            let days = common.lifetime_days.unwrap_or(certs::CA_DAYS);
            let ca = certs::create_ca("Colony CA", days).map_err(issued)?;
            place(&ca, &cert_path, &common.ca_key, common.overwrite)?;
            Ok(vec![
                format!(
                    "wrote {} (share it with every node and client)",
                    cert_path.display()
                ),
                format!(
                    "wrote {} (0600; keep it off the nodes)",
                    common.ca_key.display()
                ),
            ])
        }
        CertsCommand::CreateNode { hosts, common } => {
            let (cert, key) = (
                common.certs_dir.join(NODE_CERT_FILE),
                common.certs_dir.join(NODE_KEY_FILE),
            );
            refuse_existing(&[&cert, &key], common.overwrite)?;
            let (ca_cert, ca_key) = ca(common)?;
            create_dir(&common.certs_dir, 0o755)?;
            let days = common.lifetime_days.unwrap_or(certs::LEAF_DAYS);
            let node = certs::create_node(&ca_cert, &ca_key, hosts, days).map_err(issued)?;
            place(&node, &cert, &key, common.overwrite)?;
            Ok(vec![
                format!("wrote {} for {}", cert.display(), hosts.join(", ")),
                format!("wrote {} (0600)", key.display()),
            ])
        }
        CertsCommand::CreateClient { name, common } => {
            let cert: PathBuf = common.certs_dir.join(format!("client.{name}.crt"));
            let key: PathBuf = common.certs_dir.join(format!("client.{name}.key"));
            let (ca_cert, ca_key) = ca(common)?;
            // The name is checked before it becomes part of a path.
            let days = common.lifetime_days.unwrap_or(certs::LEAF_DAYS);
            let client = certs::create_client(&ca_cert, &ca_key, name, days).map_err(issued)?;
            refuse_existing(&[&cert, &key], common.overwrite)?;
            place(&client, &cert, &key, common.overwrite)?;
            Ok(vec![
                format!("wrote {} for client {name}", cert.display()),
                format!("wrote {} (0600)", key.display()),
            ])
        }
    }
}
