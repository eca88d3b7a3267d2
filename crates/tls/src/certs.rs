//! Creating certificates, as `cockroach cert` does: a cluster CA, node certificates
//! (server and client use, naming the node's hosts and addresses) and client
//! certificates (client use only, naming a principal). Pure: PEM in, PEM out.

use crate::{pem, TlsError};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, UnixTime};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// Default lifetime of a CA certificate (10 years, as cockroach's).
pub const CA_DAYS: u32 = 3650;
/// Default lifetime of node and client certificates (about 5 years, as cockroach's).
pub const LEAF_DAYS: u32 = 1830;

/// A certificate and its key, both PEM.
#[derive(Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

/// The URI name every node certificate carries: a certificate of the cluster CA without it
/// is not a node's, whatever its key usages (a CA shared with other services may issue
/// server-and-client certificates for them too).
pub const NODE_URI: &str = "colony://node";

/// The URI name of a client certificate is this plus the client's name: what makes a
/// certificate of the CA a Colony client's (see [`client_name`]).
pub const CLIENT_URI_PREFIX: &str = "colony://client/";

/// Extended key usage serverAuth (1.3.6.1.5.5.7.3.1), DER content.
const EKU_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
/// Extended key usage clientAuth (1.3.6.1.5.5.7.3.2), DER content.
const EKU_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A node: serves the API and the internal listener, dials peers.
    Node,
    /// A client: authenticates to a node.
    Client,
}

fn rcgen_err(e: rcgen::Error) -> TlsError {
    TlsError::Pem(format!("certificate: {e}"))
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    // An hour of slack for clocks a little behind the one that issued it.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
}

/// A self-signed CA named `common_name`, valid for `days`.
pub fn create_ca(common_name: &str, days: u32) -> Result<Issued, TlsError> {
    let key = KeyPair::generate().map_err(rcgen_err)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Colony");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, days);
    let cert = params.self_signed(&key).map_err(rcgen_err)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Checks a host given for a node certificate: an IP address or a DNS name.
fn san(host: &str) -> Result<SanType, TlsError> {
    let host = host.trim();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
        });
    if !valid {
        return Err(TlsError::Pem(format!(
            "{host:?} is neither an IP address nor a DNS name"
        )));
    }
    Ok(SanType::DnsName(
        host.to_ascii_lowercase().try_into().map_err(rcgen_err)?,
    ))
}

/// A node certificate for `hosts` (DNS names and IP addresses), signed by the CA.
pub fn create_node(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    hosts: &[String],
    days: u32,
) -> Result<Issued, TlsError> {
    if hosts.is_empty() {
        return Err(TlsError::Pem(
            "a node certificate needs at least one host".into(),
        ));
    }
    let mut params = CertificateParams::default();
    params.subject_alt_names = hosts.iter().map(|h| san(h)).collect::<Result<_, _>>()?;
    params
        .subject_alt_names
        .push(SanType::URI(NODE_URI.try_into().map_err(rcgen_err)?));
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Colony");
    params.distinguished_name.push(DnType::CommonName, "node");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    sign(params, ca_cert_pem, ca_key_pem, days, Usage::Node)
}

/// A client certificate for principal `name`, signed by the CA.
pub fn create_client(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    name: &str,
    days: u32,
) -> Result<Issued, TlsError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(TlsError::Pem(
            "a client name is 1 to 64 of [A-Za-z0-9._-]".into(),
        ));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Colony");
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.subject_alt_names = vec![SanType::URI(
        format!("{CLIENT_URI_PREFIX}{name}")
            .try_into()
            .map_err(rcgen_err)?,
    )];
    sign(params, ca_cert_pem, ca_key_pem, days, Usage::Client)
}

fn sign(
    mut params: CertificateParams,
    ca_cert_pem: &str,
    ca_key_pem: &str,
    days: u32,
    usage: Usage,
) -> Result<Issued, TlsError> {
    validity(&mut params, days);
    let ca_key = KeyPair::from_pem(ca_key_pem)
        .map_err(|_| TlsError::Pem("the CA key is not a usable private key".into()))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, &ca_key)
        .map_err(|_| TlsError::Pem("the CA certificate cannot be read".into()))?;
    let key = KeyPair::generate().map_err(rcgen_err)?;
    let cert = params.signed_by(&key, &issuer).map_err(rcgen_err)?;
    // rcgen signs with whatever key it is given: check the result chains to the CA
    // certificate, so another CA's key is refused rather than written out.
    let cas = pem::certificates(ca_cert_pem.as_bytes())?;
    verify(cert.der(), &[], &cas, usage, SystemTime::now())
        .map_err(|_| TlsError::Pem("the CA key does not belong to the CA certificate".into()))?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Whether `cert` chains (through `intermediates`) to one of `cas` at `now` and may be
/// used as `usage`: a node certificate must carry the serverAuth and clientAuth key
/// usages (required, not merely allowed) and the [`NODE_URI`] name; a client one,
/// clientAuth.
pub fn verify(
    cert: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    cas: &[CertificateDer<'_>],
    usage: Usage,
    now: SystemTime,
) -> Result<(), VerifyError> {
    let anchors = cas
        .iter()
        .map(webpki::anchor_from_trusted_cert)
        .collect::<Result<Vec<_>, _>>()?;
    let ee = webpki::EndEntityCert::try_from(cert)?;
    let algs = crate::provider().signature_verification_algorithms.all;
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let at = UnixTime::since_unix_epoch(since);
    let client = webpki::KeyUsage::required(EKU_CLIENT_AUTH);
    ee.verify_for_usage(algs, &anchors, intermediates, at, client, None, None)?;
    if usage == Usage::Node {
        let server = webpki::KeyUsage::required(EKU_SERVER_AUTH);
        ee.verify_for_usage(algs, &anchors, intermediates, at, server, None, None)?;
        if !has_uri(cert, NODE_URI) {
            return Err(VerifyError::NotANode);
        }
    }
    Ok(())
}

/// Why a certificate is not what it should be.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Chain, validity or key usage.
    #[error("{0}")]
    Webpki(#[from] webpki::Error),
    /// A certificate of the CA, but without the Colony node name.
    #[error("not a Colony node certificate (no {NODE_URI} name)")]
    NotANode,
}

/// Whether `cert` is valid for `addr` (`ip:port`, or `host:port`): what a peer's
/// certificate must name to speak for the member at that address.
pub fn names_address(cert: &CertificateDer<'_>, addr: &str) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    let name = match addr.parse::<std::net::SocketAddr>() {
        Ok(sa) => rustls::pki_types::ServerName::IpAddress(sa.ip().into()),
        Err(_) => {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            match rustls::pki_types::ServerName::try_from(host.to_string()) {
                Ok(n) => n,
                Err(_) => return false,
            }
        }
    };
    ee.verify_is_valid_for_subject_name(&name).is_ok()
}

/// The subject's common name of `cert`, when it has exactly one.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let mut names = parsed.subject().iter_common_name();
    let cn = names.next()?;
    if names.next().is_some() {
        return None;
    }
    cn.as_str().ok().map(str::to_string)
}

/// The name of a Colony client certificate (as `create-client` makes them): one common
/// name, the URI `colony://client/<that name>`, and not a node's certificate. `None` for
/// anything else, so a node certificate or another service's certificate of the same CA
/// never stands for a client.
pub fn client_name(cert: &CertificateDer<'_>) -> Option<String> {
    let cn = common_name(cert)?;
    let uris = uris(cert);
    let marked = uris
        .iter()
        .any(|u| u.strip_prefix(CLIENT_URI_PREFIX) == Some(cn.as_str()));
    (marked && !uris.iter().any(|u| u == NODE_URI)).then_some(cn)
}

/// The URI names of `cert`.
fn uris(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
        return Vec::new();
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .collect()
}

/// Whether `cert` names `uri` among its subject alternative names.
fn has_uri(cert: &CertificateDer<'_>, uri: &str) -> bool {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
        return false;
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return false;
    };
    san.value
        .general_names
        .iter()
        .any(|n| matches!(n, x509_parser::extensions::GeneralName::URI(u) if *u == uri))
}

/// Whether `cert` is a CA certificate (basicConstraints cA), as every trust anchor in a
/// `ca.crt` must be (a leaf there would make whatever it signed trusted).
pub fn is_ca(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert).is_ok_and(|(_, c)| c.is_ca())
}

/// Seconds since the Unix epoch at which `cert` expires (its notAfter).
pub fn not_after(cert: &CertificateDer<'_>) -> Result<i64, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|_| TlsError::Pem("the certificate cannot be parsed".into()))?;
    Ok(parsed.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(pem_text: &str) -> CertificateDer<'static> {
        pem::certificates(pem_text.as_bytes())
            .expect("pem")
            .remove(0)
    }

    #[test]
    fn node_and_client_certificates_chain_to_their_ca_with_their_usage() {
        let ca = create_ca("test CA", 30).expect("ca");
        let node = create_node(
            &ca.cert_pem,
            &ca.key_pem,
            &["127.0.0.1".into(), "node-1.colony".into()],
            10,
        )
        .expect("node");
        let client = create_client(&ca.cert_pem, &ca.key_pem, "alice", 10).expect("client");
        assert_eq!(
            common_name(&der(&client.cert_pem)).as_deref(),
            Some("alice")
        );
        assert_eq!(
            client_name(&der(&client.cert_pem)).as_deref(),
            Some("alice")
        );
        assert_eq!(
            client_name(&der(&node.cert_pem)),
            None,
            "a node is not a client"
        );
        let cas = [der(&ca.cert_pem)];
        let now = SystemTime::now();
        verify(&der(&node.cert_pem), &[], &cas, Usage::Node, now).expect("node verifies");
        verify(&der(&client.cert_pem), &[], &cas, Usage::Client, now).expect("client verifies");
        // A client certificate is not a node's.
        assert!(verify(&der(&client.cert_pem), &[], &cas, Usage::Node, now).is_err());
        // Nor does anything verify after it expired.
        let later = now + Duration::from_secs(11 * 86_400);
        assert!(verify(&der(&node.cert_pem), &[], &cas, Usage::Node, later).is_err());
        let expiry = not_after(&der(&node.cert_pem)).expect("expiry");
        let in_ten_days = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("epoch")
            .as_secs() as i64
            + 10 * 86_400;
        assert!(
            (expiry - in_ten_days).abs() < 5,
            "{expiry} vs {in_ten_days}"
        );
    }

    #[test]
    fn another_cas_certificate_or_key_is_refused() {
        let ca = create_ca("test CA", 30).expect("ca");
        let other = create_ca("other CA", 30).expect("other");
        // The other CA's key with this CA's certificate: refused, nothing issued.
        let err = create_node(&ca.cert_pem, &other.key_pem, &["h".into()], 10).unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");
        let foreign =
            create_node(&other.cert_pem, &other.key_pem, &["h".into()], 10).expect("node");
        assert!(verify(
            &der(&foreign.cert_pem),
            &[],
            &[der(&ca.cert_pem)],
            Usage::Node,
            SystemTime::now()
        )
        .is_err());
    }

    #[test]
    fn a_cas_certificate_without_the_node_name_or_key_usages_is_not_a_node() {
        let ca = create_ca("test CA", 30).expect("ca");
        let ca_key = KeyPair::from_pem(&ca.key_pem).expect("key");
        let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, &ca_key).expect("issuer");
        let cas = [der(&ca.cert_pem)];
        let sign = |params: CertificateParams| {
            let key = KeyPair::generate().expect("key");
            params
                .signed_by(&key, &issuer)
                .expect("signed")
                .der()
                .clone()
        };
        // No extended key usage at all (webpki alone would take it for anything).
        let mut bare = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        validity(&mut bare, 1);
        let bare = sign(bare);
        assert!(verify(&bare, &[], &cas, Usage::Node, SystemTime::now()).is_err());
        assert!(verify(&bare, &[], &cas, Usage::Client, SystemTime::now()).is_err());
        // Server and client use, but not the Colony node name: another service's.
        let mut other = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        other.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        validity(&mut other, 1);
        let other = sign(other);
        assert!(verify(&other, &[], &cas, Usage::Node, SystemTime::now()).is_err());
        assert!(is_ca(&cas[0]) && !is_ca(&other));
    }

    #[test]
    fn normalizing_keeps_the_certificates_only() {
        let ca = create_ca("t", 1).expect("ca");
        let padded = format!("junk before\n{}\ntrailing junk\n", ca.cert_pem);
        let n = pem::normalized(padded.as_bytes()).expect("normalized");
        assert!(!n.contains("junk"));
        assert_eq!(
            pem::certificates(n.as_bytes()).expect("certs"),
            pem::certificates(ca.cert_pem.as_bytes()).expect("certs")
        );
    }

    #[test]
    fn a_node_certificate_names_the_addresses_it_was_made_for() {
        let ca = create_ca("test CA", 30).expect("ca");
        let node = create_node(
            &ca.cert_pem,
            &ca.key_pem,
            &["10.0.0.11".into(), "n1.colony".into()],
            1,
        )
        .expect("node");
        let cert = der(&node.cert_pem);
        assert!(names_address(&cert, "10.0.0.11:7948"));
        assert!(names_address(&cert, "n1.colony:7948"));
        assert!(
            !names_address(&cert, "10.0.0.12:7948"),
            "another member's address"
        );
        assert!(!names_address(&cert, "garbage"));
    }

    #[test]
    fn hosts_and_names_are_checked() {
        let ca = create_ca("test CA", 30).expect("ca");
        assert!(create_node(&ca.cert_pem, &ca.key_pem, &[], 10).is_err());
        assert!(create_node(&ca.cert_pem, &ca.key_pem, &["bad host/x".into()], 10).is_err());
        assert!(create_node(&ca.cert_pem, &ca.key_pem, &["[::1]".into()], 10).is_ok());
        assert!(create_client(&ca.cert_pem, &ca.key_pem, "", 10).is_err());
        assert!(create_client(&ca.cert_pem, &ca.key_pem, "a b", 10).is_err());
    }
}
