//! Client configurations for connections the node opens.

use crate::{pem, provider, TlsError};
use rustls::{ClientConfig, RootCertStore};

/// ALPN for HTTP/1.1-only clients (reqwest built without h2).
pub const ALPN_HTTP1: &[&[u8]] = &[b"http/1.1"];

/// A client that trusts Mozilla's roots (compiled in, so it works in an image without
/// a system store), speaks TLS 1.3 and 1.2 with the provider's safe defaults, and
/// offers `alpn`.
pub fn public_roots(alpn: &[&[u8]]) -> Result<ClientConfig, TlsError> {
    let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    with_roots(roots, alpn)
}

/// A client that trusts only the CA certificates of `ca_pem` (a private endpoint's own
/// CA): a certificate Mozilla's roots would accept is refused unless that CA issued it.
pub fn private_ca(ca_pem: &[u8], alpn: &[&[u8]]) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in pem::certificates(ca_pem)? {
        roots.add(cert).map_err(|_| {
            TlsError::Pem("a certificate of the CA bundle is not a usable trust anchor".into())
        })?;
    }
    with_roots(roots, alpn)
}

fn with_roots(roots: RootCertStore, alpn: &[&[u8]]) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_client_trusts_mozillas_roots_and_offers_http1() {
        let c = public_roots(ALPN_HTTP1).expect("config");
        assert!(c.alpn_protocols.len() == 1);
        assert_eq!(c.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn a_private_ca_must_be_a_certificate() {
        assert!(private_ca(b"not pem", ALPN_HTTP1).is_err());
        let bogus = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(private_ca(bogus, ALPN_HTTP1).is_err());
    }
}
