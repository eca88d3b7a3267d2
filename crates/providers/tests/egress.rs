//! Attacks by a hostile tenant through `base_url`, against real local servers: reaching
//! loopback, the node's own listeners or a name that resolves to loopback; choosing the
//! path with `?`/`#`; bouncing through a redirect; sending a credential to another
//! host; flooding the node with an oversize body; reading an internal service's error
//! page back through the case's error. Each fails without the defence.

#![allow(clippy::unwrap_used)]

mod support;

use colony_providers::{
    BreakerConfig, ChatMessage, ConfigError, Credential, EgressPolicy, ErrorKind, Provider,
    ProviderConfig, Registry, RetryPolicy, DEFAULT_MAX_RESPONSE_BYTES,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::{chunked_response, loopback, rules, MockServer, RawServer, Reply};

const TENANT: &str = "acme";

fn ask() -> Vec<ChatMessage> {
    vec![ChatMessage::user("hello")]
}

/// Retries that would show if a refusal were retried.
fn retrying(url: &str) -> ProviderConfig {
    ProviderConfig::openai(url, "m")
        .with_timeout(Duration::from_secs(5))
        .with_retry(RetryPolicy::new(
            3,
            Duration::from_millis(1),
            Duration::from_millis(2),
        ))
}

fn once(url: &str) -> ProviderConfig {
    retrying(url).with_retry(RetryPolicy::none())
}

fn registry(egress: EgressPolicy) -> Registry {
    Registry::new(
        BreakerConfig {
            min_calls: u32::MAX,
            ..BreakerConfig::default()
        },
        egress,
    )
    .unwrap()
}

#[tokio::test]
async fn loopback_and_other_special_addresses_are_refused_by_default() {
    let server = MockServer::start(vec![]).await;
    let port = server.port();
    let reg = registry(EgressPolicy::default());

    let err = reg.provider(TENANT, once(&server.base_url)).unwrap_err();
    assert!(matches!(err, ConfigError::Egress(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "egress to 127.0.0.1:{port} refused: loopback address (allow it with providers.egress.allow)"
        )
    );

    // Other spellings of the same place.
    for (url, why) in [
        (format!("http://127.1:{port}/v1"), "loopback address"),
        (format!("http://2130706433:{port}/v1"), "loopback address"),
        (format!("http://0x7f000001:{port}/v1"), "loopback address"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/v1"),
            "loopback address",
        ),
        (format!("http://[::1]:{port}/v1"), "loopback address"),
        // Connecting to 0.0.0.0 reaches the local host.
        (format!("http://0.0.0.0:{port}/v1"), "unspecified address"),
        (
            "http://169.254.169.254/latest/meta-data".to_string(),
            "cloud metadata address",
        ),
        (
            "http://[fd00:ec2::254]/latest".to_string(),
            "cloud metadata address",
        ),
        ("http://10.0.0.1:8000/v1".to_string(), "private address"),
        ("http://192.168.1.1/v1".to_string(), "private address"),
        ("http://[fe80::1]/v1".to_string(), "link-local address"),
        (
            "http://100.100.100.200/v1".to_string(),
            "shared (cgnat) address",
        ),
    ] {
        let err = reg.provider(TENANT, once(&url)).unwrap_err();
        match &err {
            ConfigError::Egress(denied) => assert_eq!(denied.reason, why, "{url}"),
            other => panic!("{url}: {other:?}"),
        }
    }

    // Built without the registry, the default policy is the same.
    let direct = Provider::new(
        once(&server.base_url),
        Arc::new(colony_providers::Breaker::new(BreakerConfig::default())),
        EgressPolicy::default(),
    );
    assert!(matches!(direct, Err(ConfigError::Egress(_))));

    assert_eq!(server.count(), 0, "nothing reached the server");
    assert!(
        reg.stats().is_empty(),
        "a refused provider takes no breaker"
    );
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_without_a_rule_and_allowed_with_one() {
    let server = MockServer::start(vec![Reply::ok("via name")]).await;
    let url = format!("http://localhost:{}/v1", server.port());

    // The name is only known to be loopback once resolved: the call is refused.
    let reg = registry(EgressPolicy::default());
    let p = reg.provider(TENANT, retrying(&url)).unwrap();
    let err = p.complete(&ask()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::EgressDenied, "{err}");
    assert!(!err.retryable);
    assert_eq!(err.attempts, 1, "not retried");
    assert!(
        err.message.starts_with("egress to localhost:"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("refused: loopback address"),
        "{}",
        err.message
    );
    assert!(
        err.to_string()
            .starts_with("egress refused after 1 attempt(s)"),
        "{err}"
    );
    assert_eq!(p.breaker().stats().failures, 0, "not the provider's fault");
    assert_eq!(server.count(), 0, "nothing reached the server");

    // A CIDR rule for 127/8 does not cover a name that may also resolve to ::1 ...
    // but a host:port rule for the name does.
    let rule = format!("localhost:{}", server.port());
    let allowed = EgressPolicy::new(rules(&[rule.as_str()]), vec![]);
    let p = registry(allowed).provider(TENANT, once(&url)).unwrap();
    assert_eq!(p.complete(&ask()).await.unwrap().text, "via name");
    assert_eq!(server.count(), 1);

    // The rule names one port: another port of the same host stays refused.
    let other_port = EgressPolicy::new(rules(&["localhost:1"]), vec![]);
    let p = registry(other_port).provider(TENANT, once(&url)).unwrap();
    assert_eq!(
        p.complete(&ask()).await.unwrap_err().kind,
        ErrorKind::EgressDenied
    );
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn the_nodes_own_listeners_are_refused_even_where_loopback_is_allowed() {
    let server = MockServer::start(vec![Reply::ok("hi")]).await;
    let own = EgressPolicy::new(rules(&["127.0.0.0/8"]), vec![server.addr]);
    let err = registry(own)
        .provider(TENANT, once(&server.base_url))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("refused: one of this node's own listeners"),
        "{err}"
    );

    // A listener bound to 0.0.0.0 is reachable on loopback at its port.
    let wildcard = SocketAddr::from(([0, 0, 0, 0], server.port()));
    let own = EgressPolicy::new(rules(&["127.0.0.0/8"]), vec![wildcard]);
    let reg = registry(own);
    assert!(reg.provider(TENANT, once(&server.base_url)).is_err());
    // ... and through a name.
    let by_name = reg
        .provider(
            TENANT,
            once(&format!("http://localhost:{}/v1", server.port())),
        )
        .unwrap();
    assert_eq!(
        by_name.complete(&ask()).await.unwrap_err().kind,
        ErrorKind::EgressDenied
    );
    assert_eq!(server.count(), 0);

    // Named exactly by the operator: allowed.
    let named = EgressPolicy::new(rules(&[server.host_port().as_str()]), vec![server.addr]);
    let p = registry(named)
        .provider(TENANT, once(&server.base_url))
        .unwrap();
    assert_eq!(p.complete(&ask()).await.unwrap().text, "hi");
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn base_url_cannot_choose_the_path_with_a_query_or_fragment() {
    let server = MockServer::start(vec![]).await;
    let reg = registry(loopback());
    let err = reg
        .provider(TENANT, once(&format!("{}/admin?", server.base_url)))
        .unwrap_err();
    assert!(matches!(err, ConfigError::BaseUrlQuery(_)), "{err:?}");
    let err = reg
        .provider(TENANT, once(&format!("{}/admin#", server.base_url)))
        .unwrap_err();
    assert!(matches!(err, ConfigError::BaseUrlFragment(_)), "{err:?}");
    let err = reg
        .provider(
            TENANT,
            once(&format!("http://user:pw@{}/v1", server.host_port())),
        )
        .unwrap_err();
    assert!(matches!(err, ConfigError::BaseUrlUserinfo), "{err:?}");
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let target = MockServer::start(vec![]).await;
    let location = format!("{}/chat/completions", target.base_url);
    let redirector = MockServer::start(vec![
        Reply::redirect(302, &location),
        Reply::redirect(307, &location),
        Reply::redirect(308, "http://169.254.169.254/latest/meta-data"),
    ])
    .await;
    // Both servers are allowed: the redirect is refused as such, not by the policy.
    let reg = registry(loopback());
    let p = reg
        .provider(
            TENANT,
            retrying(&redirector.base_url).with_credential(Credential::new(
                "k",
                "sk-secret",
                [redirector.host_port()],
            )),
        )
        .unwrap();
    for status in [302, 307, 308] {
        let err = p.complete(&ask()).await.unwrap_err();
        assert_eq!(
            err.message,
            format!("redirects are not followed (HTTP {status})")
        );
        assert_eq!(
            (err.kind, err.retryable, err.status, err.attempts),
            (ErrorKind::Status, false, Some(status), 1)
        );
        assert!(!err.to_string().contains(&target.base_url), "{err}");
        assert!(!err.to_string().contains("169.254"), "{err}");
    }
    assert_eq!(redirector.count(), 3);
    assert_eq!(target.count(), 0, "the redirect target got nothing");
}

#[tokio::test]
async fn a_credential_bound_to_one_host_is_not_sent_to_another() {
    let a = MockServer::start(vec![Reply::ok("a")]).await;
    let b = MockServer::start(vec![Reply::ok("b")]).await;
    let cred = Credential::new("openai", "sk-bound-to-a", [a.host_port()]);
    let reg = registry(loopback());

    let err = reg
        .provider(TENANT, once(&b.base_url).with_credential(cred.clone()))
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::CredentialHost { credential, host, .. }
            if credential == "openai" && *host == b.host_port()),
        "{err:?}"
    );
    assert!(!err.to_string().contains("sk-bound-to-a"));
    // The same server under another name is another host.
    let err = reg
        .provider(
            TENANT,
            once(&format!("http://localhost:{}/v1", a.port())).with_credential(cred.clone()),
        )
        .unwrap_err();
    assert!(matches!(err, ConfigError::CredentialHost { .. }), "{err:?}");
    assert_eq!((a.count(), b.count()), (0, 0), "nothing was sent");

    // To A it goes; B, called without it, sees no Authorization header.
    let to_a = reg
        .provider(TENANT, once(&a.base_url).with_credential(cred))
        .unwrap();
    assert_eq!(to_a.complete(&ask()).await.unwrap().text, "a");
    assert_eq!(
        a.received()[0].authorization.as_deref(),
        Some("Bearer sk-bound-to-a")
    );
    let to_b = reg.provider(TENANT, once(&b.base_url)).unwrap();
    assert_eq!(to_b.complete(&ask()).await.unwrap().text, "b");
    assert_eq!(b.received()[0].authorization, None);
}

#[tokio::test]
async fn an_oversize_body_is_refused_and_not_retried() {
    // Declared by Content-Length.
    let big = "x".repeat(DEFAULT_MAX_RESPONSE_BYTES + 1);
    let server = MockServer::start(vec![Reply::malformed(&big), Reply::ok("never")]).await;
    let p = registry(loopback())
        .provider(TENANT, retrying(&server.base_url))
        .unwrap();
    let err = p.complete(&ask()).await.unwrap_err();
    assert_eq!(
        (err.kind, err.retryable, err.status, err.attempts),
        (ErrorKind::Malformed, false, Some(200), 1)
    );
    assert_eq!(
        err.message,
        format!("response body larger than {DEFAULT_MAX_RESPONSE_BYTES} bytes")
    );
    assert_eq!(server.count(), 1);

    // Not declared (chunked): found while reading.
    let raw = RawServer::start(chunked_response(200, 64, 1024, b' '));
    let p = registry(loopback())
        .provider(
            TENANT,
            retrying(&raw.base_url).with_max_response_bytes(4096),
        )
        .unwrap();
    let err = p.complete(&ask()).await.unwrap_err();
    assert_eq!((err.kind, err.retryable), (ErrorKind::Malformed, false));
    assert_eq!(err.message, "response body larger than 4096 bytes");
    assert_eq!(raw.connections(), 1);

    // An oversize error body: the status is kept, the body is not.
    let raw = RawServer::start(chunked_response(500, 64, 1024, b'<'));
    let p = registry(loopback())
        .provider(TENANT, once(&raw.base_url).with_max_response_bytes(4096))
        .unwrap();
    let err = p.complete(&ask()).await.unwrap_err();
    assert_eq!(
        (err.kind, err.status, err.retryable),
        (ErrorKind::Status, Some(500), true)
    );
    assert_eq!(err.message, "HTTP 500 with a body larger than 4096 bytes");
}

#[tokio::test]
async fn an_internal_services_error_page_is_not_echoed() {
    let page = "<html><body>admin console: token=secret-token-123</body></html>";
    let server = MockServer::start(vec![Reply::html(404, page), Reply::html(503, page)]).await;
    let p = registry(loopback())
        .provider(TENANT, once(&server.base_url))
        .unwrap();
    for status in [404, 503] {
        let err = p.complete(&ask()).await.unwrap_err();
        assert_eq!(err.status, Some(status));
        assert_eq!(
            err.message,
            format!("HTTP {status} with a non-JSON body ({} bytes)", page.len())
        );
        assert!(!err.to_string().contains("secret-token-123"), "{err}");
        assert!(!err.to_string().contains("<html>"), "{err}");
    }
}
