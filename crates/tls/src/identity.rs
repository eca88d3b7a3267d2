//! A node's TLS identity from its certs directory (`ca.crt`, `node.crt`, `node.key`),
//! checked when loaded, and re-read when the files change so certificates rotate
//! without a restart: the resolvers hand every new handshake the current key, while
//! connections already open keep theirs.

use crate::certs::{self, Usage};
use crate::{pem, provider, TlsError};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

/// The CA certificate file in a certs directory.
pub const CA_FILE: &str = "ca.crt";
/// The node certificate file (the certificate first, then any intermediates).
pub const NODE_CERT_FILE: &str = "node.crt";
/// The node key file.
pub const NODE_KEY_FILE: &str = "node.key";

/// What a certs directory held when it was last (re)loaded.
struct Loaded {
    key: Arc<CertifiedKey>,
    stamp: Stamp,
}

/// Inode, change time and size of the node's files: a change in any means reload (the
/// change time moves on every write and rename, even a copy that keeps the mtime).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<Option<(u64, i64, i64, u64)>>);

fn stamp(dir: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp(
        [NODE_CERT_FILE, NODE_KEY_FILE]
            .iter()
            .map(|f| {
                std::fs::metadata(dir.join(f))
                    .ok()
                    .map(|m| (m.ino(), m.ctime(), m.ctime_nsec(), m.len()))
            })
            .collect(),
    )
}

/// A node's certificates: the cluster CA (fixed for the life of the process) and the
/// node's certificate and key (reloadable).
pub struct NodeIdentity {
    dir: PathBuf,
    cas: Vec<CertificateDer<'static>>,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: Mutex<Stamp>,
    not_after: AtomicI64,
    ca_not_after: i64,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("dir", &self.dir)
            .field("not_after", &self.not_after())
            .finish_non_exhaustive()
    }
}

/// Reads at most [`pem::MAX_PEM_BYTES`] (a FIFO or a growing file cannot hold the load).
fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let failed = |e: std::io::Error| TlsError::Pem(format!("{}: {e}", path.display()));
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(failed)?
        .take(pem::MAX_PEM_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() > pem::MAX_PEM_BYTES {
        return Err(TlsError::Pem(format!(
            "{}: larger than 64 KiB",
            path.display()
        )));
    }
    Ok(bytes)
}

fn in_file(path: &Path, e: TlsError) -> TlsError {
    TlsError::Pem(format!("{}: {e}", path.display()))
}

/// Loads and checks the node certificate and key of `dir` against `cas`: it chains to
/// the CA, is valid now, allows server and client use, and the key is its key.
fn load_node(dir: &Path, cas: &[CertificateDer<'static>]) -> Result<Loaded, TlsError> {
    let stamp = stamp(dir);
    let cert_path = dir.join(NODE_CERT_FILE);
    let key_path = dir.join(NODE_KEY_FILE);
    let chain =
        pem::certificates(&read_bounded(&cert_path)?).map_err(|e| in_file(&cert_path, e))?;
    let key = pem::private_key(&read_bounded(&key_path)?).map_err(|e| in_file(&key_path, e))?;
    certs::verify(&chain[0], &chain[1..], cas, Usage::Node, SystemTime::now()).map_err(|e| {
        TlsError::Pem(format!(
            "{}: not a valid node certificate of the CA in {CA_FILE} ({e})",
            cert_path.display()
        ))
    })?;
    let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        TlsError::Pem(format!(
            "{}: does not match {} ({e})",
            key_path.display(),
            cert_path.display()
        ))
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        stamp,
    })
}

impl NodeIdentity {
    /// Loads `dir`, or says which file is missing or wrong.
    pub fn load(dir: &Path) -> Result<Self, TlsError> {
        let ca_path = dir.join(CA_FILE);
        let cas = pem::certificates(&read_bounded(&ca_path)?).map_err(|e| in_file(&ca_path, e))?;
        if !cas.iter().all(certs::is_ca) {
            return Err(TlsError::Pem(format!(
                "{}: holds a certificate that is not a CA's (only CA certificates may be trust \
                 anchors)",
                ca_path.display()
            )));
        }
        let ca_not_after = certs::not_after(&cas[0]).map_err(|e| in_file(&ca_path, e))?;
        let loaded = load_node(dir, &cas)?;
        let not_after = certs::not_after(&loaded.key.cert[0])?;
        Ok(Self {
            dir: dir.to_path_buf(),
            cas,
            current: RwLock::new(loaded.key),
            stamp: Mutex::new(loaded.stamp),
            not_after: AtomicI64::new(not_after),
            ca_not_after,
        })
    }

    /// The certs directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster CA's certificates.
    pub fn cas(&self) -> &[CertificateDer<'static>] {
        &self.cas
    }

    /// When the node certificate in use expires (seconds since the Unix epoch).
    pub fn not_after(&self) -> i64 {
        self.not_after.load(Ordering::Relaxed)
    }

    /// When the CA certificate expires (seconds since the Unix epoch).
    pub fn ca_not_after(&self) -> i64 {
        self.ca_not_after
    }

    /// The certificate and key new handshakes use.
    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the node certificate and key if their files changed (or always, with
    /// `force`, as on SIGHUP). `Ok(true)` when a new certificate is in use; an error
    /// leaves the old one in use (a half-copied pair is retried at the next check).
    pub fn reload(&self, force: bool) -> Result<bool, TlsError> {
        let now = stamp(&self.dir);
        {
            let seen = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
            if !force && *seen == now {
                return Ok(false);
            }
        }
        let loaded = load_node(&self.dir, &self.cas)?;
        let not_after = certs::not_after(&loaded.key.cert[0])?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = loaded.key;
        *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = loaded.stamp;
        self.not_after.store(not_after, Ordering::Relaxed);
        Ok(true)
    }
}

/// Serves (and presents) whatever certificate a [`NodeIdentity`] holds now.
#[derive(Debug, Clone)]
pub struct CurrentCert(pub Arc<NodeIdentity>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

impl ResolvesClientCert for CurrentCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{create_ca, create_node};
    use crate::files::{write, CERT_MODE, KEY_MODE};

    fn issue(dir: &Path, ca: &certs::Issued, host: &str, days: u32) {
        let node = create_node(&ca.cert_pem, &ca.key_pem, &[host.into()], days).expect("node");
        write(
            &dir.join(NODE_CERT_FILE),
            node.cert_pem.as_bytes(),
            CERT_MODE,
            true,
        )
        .expect("crt");
        write(
            &dir.join(NODE_KEY_FILE),
            node.key_pem.as_bytes(),
            KEY_MODE,
            true,
        )
        .expect("key");
    }

    #[test]
    fn loads_checks_and_reloads_on_change_only() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = create_ca("t", 30).expect("ca");
        write(
            &dir.path().join(CA_FILE),
            ca.cert_pem.as_bytes(),
            CERT_MODE,
            false,
        )
        .expect("ca");
        issue(dir.path(), &ca, "127.0.0.1", 5);
        let id = NodeIdentity::load(dir.path()).expect("load");
        let first = id.not_after();
        assert!(!id.reload(false).expect("unchanged"));
        issue(dir.path(), &ca, "127.0.0.1", 20);
        assert!(id.reload(false).expect("changed"));
        assert!(id.not_after() > first + 10 * 86_400);
        // A key that is not the certificate's: refused, the old pair stays in use.
        let other = create_node(&ca.cert_pem, &ca.key_pem, &["h".into()], 5).expect("other");
        write(
            &dir.path().join(NODE_KEY_FILE),
            other.key_pem.as_bytes(),
            KEY_MODE,
            true,
        )
        .expect("key");
        let err = id.reload(true).unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
        assert!(id.not_after() > first + 10 * 86_400);
    }

    #[test]
    fn a_copy_that_keeps_size_and_mtime_is_still_noticed() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = create_ca("t", 30).expect("ca");
        write(
            &dir.path().join(CA_FILE),
            ca.cert_pem.as_bytes(),
            CERT_MODE,
            false,
        )
        .expect("ca");
        issue(dir.path(), &ca, "127.0.0.1", 5);
        let id = NodeIdentity::load(dir.path()).expect("load");
        let crt = dir.path().join(NODE_CERT_FILE);
        let mtime = std::fs::metadata(&crt)
            .and_then(|m| m.modified())
            .expect("mtime");
        issue(dir.path(), &ca, "127.0.0.1", 20);
        // As `cp -p` or `rsync -t` would leave it.
        for f in [NODE_CERT_FILE, NODE_KEY_FILE] {
            let file = std::fs::File::options()
                .write(true)
                .open(dir.path().join(f))
                .expect("open");
            file.set_modified(mtime).expect("set mtime");
        }
        assert!(id.reload(false).expect("reload"), "the new pair is noticed");
    }

    #[test]
    fn a_ca_file_with_a_leaf_certificate_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = create_ca("t", 30).expect("ca");
        let leaf = create_node(&ca.cert_pem, &ca.key_pem, &["h".into()], 5).expect("leaf");
        let bundle = format!("{}{}", ca.cert_pem, leaf.cert_pem);
        write(
            &dir.path().join(CA_FILE),
            bundle.as_bytes(),
            CERT_MODE,
            false,
        )
        .expect("ca");
        issue(dir.path(), &ca, "127.0.0.1", 5);
        let err = NodeIdentity::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a CA's"), "{err}");
    }

    #[test]
    fn another_cas_node_certificate_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = create_ca("t", 30).expect("ca");
        let other = create_ca("o", 30).expect("other");
        write(
            &dir.path().join(CA_FILE),
            ca.cert_pem.as_bytes(),
            CERT_MODE,
            false,
        )
        .expect("ca");
        issue(dir.path(), &other, "127.0.0.1", 5);
        let err = NodeIdentity::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("node.crt") && err.contains("not a valid node certificate"),
            "{err}"
        );
        let missing = NodeIdentity::load(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("ca.crt"), "{missing}");
    }
}
