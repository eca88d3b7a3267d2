//! Provider calls over HTTPS against a real local TLS server: a certificate no trusted
//! CA issued is refused before anything is sent (Mozilla's roots, the default), the
//! credential's own CA makes a private endpoint work, and another CA's certificate is
//! refused even with a CA configured.

#![allow(clippy::unwrap_used)]

mod support;

use colony_providers::{
    BreakerConfig, ChatMessage, Credential, ErrorKind, ProviderConfig, Registry, RetryPolicy,
};
use colony_tls::certs::{create_ca, create_node, Issued};
use colony_tls::files::{write, CERT_MODE, KEY_MODE};
use colony_tls::identity::NodeIdentity;
use std::sync::Arc;
use std::time::Duration;
use support::{loopback, MockServer, Reply};

/// A TLS server config for 127.0.0.1 whose certificate `ca` issued.
fn server_tls(ca: &Issued) -> Arc<rustls::ServerConfig> {
    let dir = tempfile::tempdir().unwrap();
    let node = create_node(&ca.cert_pem, &ca.key_pem, &["127.0.0.1".into()], 1).unwrap();
    write(
        &dir.path().join("ca.crt"),
        ca.cert_pem.as_bytes(),
        CERT_MODE,
        false,
    )
    .unwrap();
    write(
        &dir.path().join("node.crt"),
        node.cert_pem.as_bytes(),
        CERT_MODE,
        false,
    )
    .unwrap();
    write(
        &dir.path().join("node.key"),
        node.key_pem.as_bytes(),
        KEY_MODE,
        false,
    )
    .unwrap();
    let identity = Arc::new(NodeIdentity::load(dir.path()).unwrap());
    Arc::new(colony_tls::server::public(&identity, false).unwrap())
}

fn config(server: &MockServer, ca_pem: Option<&str>) -> ProviderConfig {
    let mut cred = Credential::new("private", "sk-private", [server.host_port()]);
    if let Some(pem) = ca_pem {
        cred = cred.with_ca_pem(pem);
    }
    ProviderConfig::openai(&server.base_url, "m")
        .with_timeout(Duration::from_secs(5))
        .with_retry(RetryPolicy::none())
        .with_credential(cred)
}

fn registry() -> Registry {
    Registry::new(BreakerConfig::default(), loopback()).unwrap()
}

fn answer() -> Reply {
    Reply::Ok {
        content: "over tls".into(),
        usage: None,
    }
}

#[tokio::test]
async fn a_certificate_no_trusted_ca_issued_is_refused_before_anything_is_sent() {
    let ca = create_ca("private CA", 1).unwrap();
    let server = MockServer::start_tls(vec![answer()], server_tls(&ca)).await;
    let provider = registry().provider("acme", config(&server, None)).unwrap();
    let err = provider
        .complete(&[ChatMessage::user("hi")])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Connection, "{err:?}");
    assert_eq!(server.count(), 0, "nothing may reach an unverified server");
}

#[tokio::test]
async fn the_credentials_ca_makes_a_private_https_endpoint_work() {
    let ca = create_ca("private CA", 1).unwrap();
    let server = MockServer::start_tls(vec![answer()], server_tls(&ca)).await;
    assert!(server.base_url.starts_with("https://"));
    let provider = registry()
        .provider("acme", config(&server, Some(&ca.cert_pem)))
        .unwrap();
    let got = provider.complete(&[ChatMessage::user("hi")]).await.unwrap();
    assert_eq!(got.text, "over tls");
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn another_cas_certificate_is_refused_although_a_ca_is_configured() {
    let ca = create_ca("private CA", 1).unwrap();
    let other = create_ca("someone else", 1).unwrap();
    let server = MockServer::start_tls(vec![answer()], server_tls(&other)).await;
    let provider = registry()
        .provider("acme", config(&server, Some(&ca.cert_pem)))
        .unwrap();
    let err = provider
        .complete(&[ChatMessage::user("hi")])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Connection, "{err:?}");
    assert_eq!(server.count(), 0);
}

#[test]
fn a_ca_that_is_not_pem_is_refused_when_the_provider_is_built() {
    let cred = Credential::new("k", "v", ["h:443"]).with_ca_pem("not a certificate");
    let cfg = ProviderConfig::openai("https://h/v1", "m").with_credential(cred);
    let err = registry().provider("acme", cfg).unwrap_err().to_string();
    assert!(err.contains("PEM"), "{err}");
    assert!(
        !err.contains("not a certificate"),
        "the input is not echoed: {err}"
    );
}
