//! The circuit breaker in front of a real local OpenAI-compatible server: it opens after
//! failures, rejects without touching the network, half-opens after the cooldown with a
//! limited number of probes, and closes after a successful one.

#![allow(clippy::unwrap_used)]

mod support;

use colony_providers::{
    BreakerConfig, BreakerState, ChatMessage, ErrorKind, Provider, ProviderConfig, Registry,
    RetryPolicy,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::{MockServer, Reply};

const COOLDOWN_MS: u64 = 300;

const TENANT: &str = "acme";

fn registry() -> Registry {
    Registry::new(
        BreakerConfig {
            window_ms: 60_000,
            min_calls: 4,
            failure_rate: 0.5,
            cooldown_ms: COOLDOWN_MS,
            half_open_probes: 1,
        },
        support::loopback(),
    )
    .unwrap()
}

fn provider(reg: &Registry, server: &MockServer) -> Provider {
    tenant_provider(reg, TENANT, server)
}

fn tenant_provider(reg: &Registry, tenant: &str, server: &MockServer) -> Provider {
    reg.provider(
        tenant,
        ProviderConfig::openai(&server.base_url, "m")
            .with_timeout(Duration::from_secs(5))
            .with_retry(RetryPolicy::none()),
    )
    .unwrap()
}

fn ask() -> Vec<ChatMessage> {
    vec![ChatMessage::user("hello")]
}

async fn open_it(p: &Provider, server: &MockServer) {
    server.push(vec![Reply::status(500); 4]);
    for _ in 0..4 {
        assert_eq!(
            p.complete(&ask()).await.unwrap_err().kind,
            ErrorKind::Status
        );
    }
    assert_eq!(p.breaker().state(), BreakerState::Open);
}

async fn wait_for_requests(server: &MockServer, n: usize) {
    for _ in 0..500 {
        if server.count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("server saw {} requests, expected {n}", server.count());
}

#[tokio::test]
async fn opens_rejects_fast_half_opens_and_closes_after_a_good_probe() {
    let server = MockServer::start(vec![]).await;
    let reg = registry();
    let p = Arc::new(provider(&reg, &server));
    open_it(&p, &server).await;

    // Open: rejected without a request.
    let err = p.complete(&ask()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::CircuitOpen);
    assert_eq!(err.attempts, 0);
    assert!(err.retryable);
    assert!(err.retry_after.unwrap() <= Duration::from_millis(COOLDOWN_MS));
    assert_eq!(server.count(), 4);

    // After the cooldown one slow probe goes through; a second caller is rejected.
    tokio::time::sleep(Duration::from_millis(COOLDOWN_MS + 50)).await;
    server.push([Reply::ok("back").after(Duration::from_millis(800))]);
    let probe = tokio::spawn({
        let p = p.clone();
        async move { p.complete(&ask()).await }
    });
    wait_for_requests(&server, 5).await;
    assert_eq!(p.breaker().state(), BreakerState::HalfOpen);
    let err = p.complete(&ask()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::CircuitOpen);
    assert_eq!(server.count(), 5);

    assert_eq!(probe.await.unwrap().unwrap().text, "back");
    assert_eq!(p.breaker().state(), BreakerState::Closed);
    assert_eq!(p.complete(&ask()).await.unwrap().text, "default");

    let s = p.breaker().stats();
    assert_eq!((s.opened, s.half_opened, s.closed), (1, 1, 1));
    assert_eq!(
        (s.calls, s.attempts, s.failures, s.rejections),
        (8, 6, 4, 2)
    );
    let all = reg.stats();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, TENANT);
    assert_eq!(all[0].1, p.id());
    assert_eq!(all[0].2, s);
}

#[tokio::test]
async fn a_failed_probe_reopens() {
    let server = MockServer::start(vec![]).await;
    let reg = registry();
    let p = provider(&reg, &server);
    open_it(&p, &server).await;
    tokio::time::sleep(Duration::from_millis(COOLDOWN_MS + 50)).await;
    server.push([Reply::status(503)]);
    assert_eq!(
        p.complete(&ask()).await.unwrap_err().kind,
        ErrorKind::Status
    );
    assert_eq!(p.breaker().state(), BreakerState::Open);
    assert_eq!(
        p.complete(&ask()).await.unwrap_err().kind,
        ErrorKind::CircuitOpen
    );
    assert_eq!(server.count(), 5);
    let s = p.breaker().stats();
    assert_eq!((s.opened, s.half_opened, s.closed), (2, 1, 0));
}

#[tokio::test]
async fn caller_errors_and_quota_do_not_open_it() {
    let server = MockServer::start(vec![]).await;
    let reg = registry();
    let p = provider(&reg, &server);
    server.push(vec![Reply::status(400); 3]);
    server.push(vec![Reply::insufficient_quota(); 3]);
    for _ in 0..6 {
        p.complete(&ask()).await.unwrap_err();
    }
    assert_eq!(p.breaker().state(), BreakerState::Closed);
    assert_eq!(p.breaker().stats().failures, 0);
}

#[tokio::test]
async fn providers_with_one_identity_share_a_breaker() {
    let server = MockServer::start(vec![]).await;
    let reg = registry();
    let a = provider(&reg, &server);
    // Different params (another evaluation), same base URL and model: same provider.
    let b = reg
        .provider(
            TENANT,
            ProviderConfig::openai(format!("{}/", server.base_url), "m")
                .with_param("temperature", json!(0.7))
                .with_retry(RetryPolicy::none()),
        )
        .unwrap();
    let other_model = reg
        .provider(
            TENANT,
            ProviderConfig::openai(&server.base_url, "other").with_retry(RetryPolicy::none()),
        )
        .unwrap();
    assert!(Arc::ptr_eq(a.breaker(), b.breaker()));
    assert!(!Arc::ptr_eq(a.breaker(), other_model.breaker()));

    open_it(&a, &server).await;
    assert_eq!(
        b.complete(&ask()).await.unwrap_err().kind,
        ErrorKind::CircuitOpen
    );
    assert_eq!(other_model.complete(&ask()).await.unwrap().text, "default");
    assert_eq!(reg.stats().len(), 2);
}

#[tokio::test]
async fn an_opening_breaker_stops_the_retries_of_a_call() {
    let server = MockServer::start(vec![Reply::status(500); 10]).await;
    let reg = registry();
    let p = reg
        .provider(
            TENANT,
            ProviderConfig::openai(&server.base_url, "m").with_retry(RetryPolicy::new(
                9,
                Duration::from_millis(1),
                Duration::from_millis(5),
            )),
        )
        .unwrap();
    let err = p.complete(&ask()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::CircuitOpen);
    assert_eq!(err.attempts, 4, "min_calls failures open it");
    assert_eq!(err.status, Some(500), "the last attempt's status is kept");
    assert_eq!(server.count(), 4);
}

#[tokio::test]
async fn one_tenants_failures_do_not_open_another_tenants_breaker() {
    // The attack: a hostile tenant fails calls to a provider identity another tenant
    // also uses (same base URL and model), to open a breaker they would share.
    let server = MockServer::start(vec![]).await;
    let reg = registry();
    let victim = tenant_provider(&reg, "victim", &server);
    let attacker = tenant_provider(&reg, "attacker", &server);
    assert_eq!(victim.id(), attacker.id(), "the same provider identity");
    assert!(!Arc::ptr_eq(victim.breaker(), attacker.breaker()));

    open_it(&attacker, &server).await;
    assert_eq!(
        attacker.complete(&ask()).await.unwrap_err().kind,
        ErrorKind::CircuitOpen
    );
    assert_eq!(victim.breaker().state(), BreakerState::Closed);
    assert_eq!(victim.complete(&ask()).await.unwrap().text, "default");

    // A provider the victim builds later gets the victim's (closed) breaker too.
    let again = tenant_provider(&reg, "victim", &server);
    assert!(Arc::ptr_eq(victim.breaker(), again.breaker()));
    let stats = reg.stats();
    assert_eq!(stats.len(), 2);
    assert_eq!(
        (stats[0].0.as_str(), stats[0].2.state),
        ("attacker", BreakerState::Open)
    );
    assert_eq!(
        (stats[1].0.as_str(), stats[1].2.state),
        ("victim", BreakerState::Closed)
    );
}
