//! A proxy named in the node's environment must not carry provider calls: the proxy
//! would do the DNS lookup and connect wherever it likes, around the egress policy.
//! Its own test binary, because it sets process-wide environment variables.

#![allow(clippy::unwrap_used)]

mod support;

use colony_providers::{BreakerConfig, ChatMessage, ProviderConfig, Registry, RetryPolicy};
use support::{loopback, MockServer, Reply};

#[tokio::test]
async fn environment_proxies_are_not_used() {
    let proxy = MockServer::start(vec![Reply::ok("through the proxy")]).await;
    let target = MockServer::start(vec![Reply::ok("direct")]).await;
    let proxy_url = format!("http://{}", proxy.host_port());
    // Only this test runs in this binary, before any client exists.
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        std::env::set_var(var, &proxy_url);
    }
    for var in ["NO_PROXY", "no_proxy"] {
        std::env::remove_var(var);
    }
    let reg = Registry::new(BreakerConfig::default(), loopback()).unwrap();
    let p = reg
        .provider(
            "acme",
            ProviderConfig::openai(&target.base_url, "m").with_retry(RetryPolicy::none()),
        )
        .unwrap();
    let answer = p.complete(&[ChatMessage::user("hi")]).await.unwrap();
    assert_eq!(answer.text, "direct");
    assert_eq!(proxy.count(), 0);
    assert_eq!(target.count(), 1);
}
