//! Server configurations (and the matching node-to-node client) built on a
//! [`NodeIdentity`]: TLS 1.3 and 1.2 with the provider's modern suites only (AEAD,
//! forward secret), the node certificate resolved per handshake so rotation applies to
//! new connections at once.

use crate::certs::{self, Usage};
use crate::identity::{CurrentCert, NodeIdentity};
use crate::{provider, TlsError};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// ALPN of the public API: h2, then HTTP/1.1.
pub const ALPN_PUBLIC: &[&[u8]] = &[b"h2", b"http/1.1"];
/// ALPN of the internal listener (reqwest's HTTP/1.1 client).
pub const ALPN_INTERNAL: &[&[u8]] = &[b"http/1.1"];

fn alpn(protocols: &[&[u8]]) -> Vec<Vec<u8>> {
    protocols.iter().map(|p| p.to_vec()).collect()
}

/// The public API's server: the node certificate, `h2` and `http/1.1`. With
/// `client_certs`, a client may present a client certificate of the cluster CA (checked;
/// who it names is for the API to decide), and one without a certificate is served too.
pub fn public(identity: &Arc<NodeIdentity>, client_certs: bool) -> Result<ServerConfig, TlsError> {
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = if client_certs {
        builder.with_client_cert_verifier(Arc::new(CaClientVerifier {
            cas: identity.cas().to_vec(),
            provider: provider(),
            usage: Usage::Client,
            mandatory: false,
        }))
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_cert_resolver(Arc::new(CurrentCert(identity.clone())));
    if client_certs {
        // A resumed session would carry the client certificate of its first handshake
        // unchecked (past its expiry, say): every connection does a full handshake.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    config.alpn_protocols = alpn(ALPN_PUBLIC);
    Ok(config)
}

/// The internal listener's server: the client must present a node certificate of the
/// cluster CA (server and client use: a client certificate for a person is refused).
pub fn internal(identity: &Arc<NodeIdentity>) -> Result<ServerConfig, TlsError> {
    let verifier = CaClientVerifier {
        cas: identity.cas().to_vec(),
        provider: provider(),
        usage: Usage::Node,
        mandatory: true,
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(CurrentCert(identity.clone())));
    config.alpn_protocols = alpn(ALPN_INTERNAL);
    Ok(config)
}

/// A node's client towards other nodes: trusts only the cluster CA (the peer's
/// certificate must name the address dialled and allow server use) and presents the
/// node certificate.
pub fn internal_client(identity: &Arc<NodeIdentity>) -> Result<ClientConfig, TlsError> {
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots(identity.cas())?),
        provider(),
    )
    .build()
    .map_err(|e| TlsError::Pem(format!("ca.crt: {e}")))?;
    let verifier = NodeServerVerifier {
        inner,
        cas: identity.cas().to_vec(),
    };
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(CurrentCert(identity.clone())));
    config.alpn_protocols = alpn(ALPN_INTERNAL);
    Ok(config)
}

/// A client of the public API (`colony ctl`, tests, joins): trusts only the cluster CA.
pub fn api_client(cas: &[CertificateDer<'static>]) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(cas)?)
        .with_no_client_auth();
    config.alpn_protocols = alpn(crate::client::ALPN_HTTP1);
    Ok(config)
}

/// The cluster CA as the only trust anchors.
fn roots(cas: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots
            .add(ca.clone())
            .map_err(|_| TlsError::Pem("ca.crt is not a usable trust anchor".into()))?;
    }
    Ok(roots)
}

/// A node certificate of the cluster CA, as a rustls error when not.
fn node_check(
    cas: &[CertificateDer<'static>],
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), rustls::Error> {
    usage_check(cas, end_entity, intermediates, now, Usage::Node)
}

/// A certificate of the cluster CA fit for `usage`, as a rustls error when not.
fn usage_check(
    cas: &[CertificateDer<'static>],
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    usage: Usage,
) -> Result<(), rustls::Error> {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs());
    certs::verify(end_entity, intermediates, cas, usage, at).map_err(|e| {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(e),
        )))
    })
}

/// Checks a peer node's server certificate: the usual checks (chain, validity, the name
/// dialled) and then that it is a node certificate, so another certificate of the CA
/// cannot stand in for a node.
#[derive(Debug)]
struct NodeServerVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    cas: Vec<CertificateDer<'static>>,
}

impl rustls::client::danger::ServerCertVerifier for NodeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        node_check(&self.cas, end_entity, intermediates, now)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts client certificates of the cluster CA fit for `usage` (node certificates on
/// the internal listeners, client certificates on the API); `mandatory` refuses a client
/// that presents none.
#[derive(Debug)]
struct CaClientVerifier {
    cas: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
    usage: Usage,
    mandatory: bool,
}

impl ClientCertVerifier for CaClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        usage_check(&self.cas, end_entity, intermediates, now, self.usage)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
