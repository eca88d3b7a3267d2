//! Bounded PEM parsing. Error messages say what was wrong, never echo the input.

use crate::TlsError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// Largest PEM bundle read (64 KiB: a chain of a few certificates is under 10 KiB).
pub const MAX_PEM_BYTES: usize = 64 * 1024;
/// Most certificates taken from one bundle.
pub const MAX_CERTS: usize = 16;

/// The certificates of a PEM bundle: at least one, at most [`MAX_CERTS`], in at most
/// [`MAX_PEM_BYTES`]. Other PEM sections (keys, parameters) are refused, so a private
/// key pasted by mistake is not silently kept.
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    if pem.len() > MAX_PEM_BYTES {
        return Err(TlsError::Pem(format!(
            "the PEM bundle is {} bytes; at most {MAX_PEM_BYTES} are accepted",
            pem.len()
        )));
    }
    let mut certs = Vec::new();
    let mut rest: &[u8] = pem;
    while let Some((kind, der)) = rustls::pki_types::pem::from_buf(&mut rest)
        .map_err(|_| TlsError::Pem("not valid PEM".into()))?
    {
        if kind != rustls::pki_types::pem::SectionKind::Certificate {
            return Err(TlsError::Pem(
                "the PEM bundle holds something other than CERTIFICATE sections".into(),
            ));
        }
        if certs.len() == MAX_CERTS {
            return Err(TlsError::Pem(format!(
                "the PEM bundle holds more than {MAX_CERTS} certificates"
            )));
        }
        certs.push(CertificateDer::from(der));
    }
    if certs.is_empty() {
        return Err(TlsError::Pem("no CERTIFICATE section in the PEM".into()));
    }
    Ok(certs)
}

/// `pem`'s certificates re-encoded (checked as [`certificates`] does): only the
/// certificates are kept, not text around them or other sections, so what is stored is
/// what is trusted and nothing more.
pub fn normalized(pem: &[u8]) -> Result<String, TlsError> {
    let certs = certificates(pem)?;
    let blocks: Vec<::pem::Pem> = certs
        .iter()
        .map(|c| ::pem::Pem::new("CERTIFICATE", c.to_vec()))
        .collect();
    Ok(::pem::encode_many(&blocks))
}

/// A private key from PEM (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(pem: &[u8]) -> Result<rustls::pki_types::PrivateKeyDer<'static>, TlsError> {
    if pem.len() > MAX_PEM_BYTES {
        return Err(TlsError::Pem("the key file is too large".into()));
    }
    rustls::pki_types::PrivateKeyDer::from_pem_slice(pem)
        .map_err(|_| TlsError::Pem("no usable PRIVATE KEY section in the PEM".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_oversized_and_non_certificate_bundles_are_refused() {
        assert!(certificates(b"").is_err());
        assert!(certificates(b"hello").is_err());
        assert!(certificates(&vec![b'a'; MAX_PEM_BYTES + 1]).is_err());
        let key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let err = certificates(key).unwrap_err().to_string();
        assert!(err.contains("other than CERTIFICATE"), "{err}");
        assert!(!err.contains("AAAA"));
    }

    #[test]
    fn a_bundle_with_too_many_certificates_is_refused() {
        let one = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let many = one.repeat(MAX_CERTS + 1);
        assert!(certificates(many.as_bytes()).is_err());
        assert_eq!(
            certificates(one.repeat(2).as_bytes()).map(|c| c.len()).ok(),
            Some(2)
        );
    }
}
