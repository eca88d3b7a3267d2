//! Provider calls against a real local OpenAI-compatible server: answers, request
//! contents, and the retry rules (counts and lower bounds of waits only: the machine is
//! noisy, so no tight upper bounds).

#![allow(clippy::unwrap_used)]

mod support;

use colony_providers::{
    BreakerConfig, ChatMessage, ConfigError, Credential, ErrorKind, ProviderConfig, ProviderSpec,
    Registry, ResponseCache, RetryPolicy,
};
use serde_json::json;
use std::time::{Duration, Instant, SystemTime};
use support::{MockServer, Reply};

const TENANT: &str = "acme";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn registry() -> Registry {
    // A breaker that never opens in these tests: they are about retries.
    // The test servers listen on loopback, which the default policy refuses.
    Registry::new(
        BreakerConfig {
            min_calls: u32::MAX,
            ..BreakerConfig::default()
        },
        support::loopback(),
    )
    .unwrap()
}

fn config(server: &MockServer, retries: u32, base_ms: u64) -> ProviderConfig {
    ProviderConfig::openai(&server.base_url, "test-model")
        .with_timeout(Duration::from_secs(5))
        .with_retry(RetryPolicy::new(retries, ms(base_ms), ms(10_000)))
}

fn ask() -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("answer briefly"),
        ChatMessage::user("2 + 2?"),
    ]
}

#[tokio::test]
async fn success_returns_text_and_usage_and_sends_model_messages_params_and_key() {
    let server = MockServer::start(vec![Reply::ok_with_usage("4", 12, 1)]).await;
    let spec: ProviderSpec = serde_json::from_value(json!({
        "kind": "openai",
        "base_url": server.base_url,
        "model": "test-model",
        "params": {"temperature": 0.0, "max_tokens": 8, "seed": 42, "top_p": 0.9,
                   "stop": ["\n"], "top_k": 5},
        "timeout_ms": 5000,
    }))
    .unwrap();
    let config = spec.resolve().unwrap().with_credential(Credential::new(
        "test",
        "sk-test",
        [server.host_port()],
    ));
    let provider = registry().provider(TENANT, config).unwrap();

    let c = provider.complete(&ask()).await.unwrap();
    assert_eq!(c.text, "4");
    assert_eq!(c.attempts, 1);
    assert!(!c.cached);
    assert_eq!(c.finish_reason.as_deref(), Some("stop"));
    let usage = c.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (12, 1));

    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(
        got[0].body,
        json!({
            "model": "test-model",
            "messages": [{"role": "system", "content": "answer briefly"},
                         {"role": "user", "content": "2 + 2?"}],
            "temperature": 0.0, "max_tokens": 8, "seed": 42, "top_p": 0.9,
            "stop": ["\n"], "top_k": 5,
        })
    );
}

#[tokio::test]
async fn a_credential_for_another_host_is_a_config_error() {
    let server = MockServer::start(vec![]).await;
    let config = config(&server, 0, 1).with_credential(Credential::new(
        "openai",
        "sk-test",
        ["api.openai.com:443"],
    ));
    let err = registry().provider(TENANT, config).unwrap_err();
    assert!(matches!(err, ConfigError::CredentialHost { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "credential \"openai\" may not be sent to {} (allowed: api.openai.com:443)",
            server.host_port()
        )
    );
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn retries_5xx_with_growing_backoff_then_succeeds() {
    let server = MockServer::start(vec![
        Reply::status(500),
        Reply::status(502),
        Reply::ok("fine"),
    ])
    .await;
    let provider = registry().provider(TENANT, config(&server, 3, 60)).unwrap();
    let started = Instant::now();
    let c = provider.complete(&ask()).await.unwrap();
    assert_eq!(c.text, "fine");
    assert_eq!(c.attempts, 3);
    assert_eq!(server.count(), 3);
    // Equal jitter: retry n waits at least half of base * 2^n.
    let gaps = server.gaps();
    assert!(gaps[0] >= ms(30), "{gaps:?}");
    assert!(gaps[1] >= ms(60), "{gaps:?}");
    assert!(started.elapsed() >= ms(90));
    let stats = provider.breaker().stats();
    assert_eq!(
        (stats.calls, stats.attempts, stats.retries, stats.failures),
        (1, 3, 2, 2)
    );
}

#[tokio::test]
async fn gives_up_after_max_retries_plus_one_attempts() {
    let server = MockServer::start(vec![Reply::status(503); 10]).await;
    let provider = registry().provider(TENANT, config(&server, 2, 5)).unwrap();
    let err = provider.complete(&ask()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Status);
    assert_eq!(err.status, Some(503));
    assert!(err.retryable);
    assert_eq!(err.attempts, 3);
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn retries_408_and_409_but_not_other_4xx() {
    let server = MockServer::start(vec![
        Reply::status(408),
        Reply::status(409),
        Reply::ok("ok"),
    ])
    .await;
    let provider = registry().provider(TENANT, config(&server, 3, 5)).unwrap();
    assert_eq!(provider.complete(&ask()).await.unwrap().attempts, 3);

    for status in [400, 401, 404, 422] {
        let server = MockServer::start(vec![Reply::status(status), Reply::ok("never")]).await;
        let provider = registry().provider(TENANT, config(&server, 3, 5)).unwrap();
        let err = provider.complete(&ask()).await.unwrap_err();
        assert_eq!(
            (err.kind, err.status, err.retryable),
            (ErrorKind::Status, Some(status), false)
        );
        assert_eq!(err.attempts, 1);
        assert_eq!(server.count(), 1, "status {status} must not be retried");
        // The provider answered coherently: not a breaker failure.
        assert_eq!(provider.breaker().stats().failures, 0);
    }
}

#[tokio::test]
async fn honours_retry_after_seconds_on_429() {
    let server = MockServer::start(vec![Reply::rate_limited("1"), Reply::ok("later")]).await;
    // A 1 ms backoff base: the wait can only come from Retry-After.
    let provider = registry().provider(TENANT, config(&server, 2, 1)).unwrap();
    let c = provider.complete(&ask()).await.unwrap();
    assert_eq!((c.text.as_str(), c.attempts), ("later", 2));
    assert!(
        server.gaps()[0] >= Duration::from_secs(1),
        "{:?}",
        server.gaps()
    );
}

#[tokio::test]
async fn honours_retry_after_http_date_on_429() {
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    let server = MockServer::start(vec![Reply::rate_limited(&at), Reply::ok("later")]).await;
    let provider = registry().provider(TENANT, config(&server, 2, 1)).unwrap();
    let c = provider.complete(&ask()).await.unwrap();
    assert_eq!(c.attempts, 2);
    // The date has 1 s resolution: at least (2 s - 1 s) minus the request's own time.
    assert!(server.gaps()[0] >= ms(900), "{:?}", server.gaps());
}

#[tokio::test]
async fn retry_after_longer_than_allowed_ends_the_call_retryable() {
    let server = MockServer::start(vec![Reply::rate_limited("120"), Reply::ok("never")]).await;
    let config = config(&server, 3, 1).with_retry(
        RetryPolicy::new(3, ms(1), ms(10)).with_max_retry_after(Duration::from_secs(30)),
    );
    let provider = registry().provider(TENANT, config).unwrap();
    let err = provider.complete(&ask()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert!(err.retryable);
    assert_eq!(err.retry_after, Some(Duration::from_secs(120)));
    assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn insufficient_quota_is_not_retried() {
    let server = MockServer::start(vec![Reply::insufficient_quota(), Reply::ok("never")]).await;
    let provider = registry().provider(TENANT, config(&server, 5, 1)).unwrap();
    let err = provider.complete(&ask()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InsufficientQuota);
    assert_eq!(err.status, Some(429));
    assert_eq!(err.code.as_deref(), Some("insufficient_quota"));
    assert!(!err.retryable);
    assert_eq!(err.attempts, 1);
    assert_eq!(server.count(), 1);
    let stats = provider.breaker().stats();
    assert_eq!((stats.retries, stats.failures), (0, 0));
}

#[tokio::test]
async fn a_malformed_body_is_retried_once() {
    let server =
        MockServer::start(vec![Reply::malformed("<html>oops</html>"), Reply::ok("ok")]).await;
    let provider = registry().provider(TENANT, config(&server, 3, 1)).unwrap();
    assert_eq!(provider.complete(&ask()).await.unwrap().attempts, 2);

    let server = MockServer::start(vec![
        Reply::malformed("not json"),
        Reply::malformed(r#"{"choices": []}"#),
        Reply::ok("never"),
    ])
    .await;
    let provider = registry().provider(TENANT, config(&server, 3, 1)).unwrap();
    let err = provider.complete(&ask()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Malformed);
    assert_eq!(err.status, Some(200));
    assert_eq!(err.attempts, 2);
    assert_eq!(server.count(), 2);
    assert_eq!(provider.breaker().stats().failures, 2);
}

#[tokio::test]
async fn every_attempt_has_a_timeout_and_timeouts_are_retried() {
    let slow = Reply::ok("too late").after(ms(2_000));
    let server = MockServer::start(vec![slow.clone(), slow]).await;
    let config = config(&server, 1, 1).with_timeout(ms(200));
    let provider = registry().provider(TENANT, config).unwrap();
    let started = Instant::now();
    let err = provider.complete(&ask()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(err.retryable);
    assert_eq!(err.attempts, 2);
    assert_eq!(server.count(), 2);
    assert!(started.elapsed() >= ms(400));
}

#[tokio::test]
async fn latency_is_that_of_the_successful_attempt() {
    let server =
        MockServer::start(vec![Reply::status(500), Reply::ok("slow").after(ms(150))]).await;
    let provider = registry().provider(TENANT, config(&server, 1, 1)).unwrap();
    let c = provider.complete(&ask()).await.unwrap();
    assert_eq!(c.attempts, 2);
    assert!(c.latency_ms >= 150, "{}", c.latency_ms);
}

#[tokio::test]
async fn connection_errors_are_retried() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = ProviderConfig::openai(format!("http://127.0.0.1:{port}/v1"), "m")
        .with_retry(RetryPolicy::new(2, ms(20), ms(1_000)));
    let provider = registry().provider(TENANT, config).unwrap();
    let started = Instant::now();
    let err = provider.complete(&ask()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Connection);
    assert!(err.retryable);
    assert_eq!(err.attempts, 3);
    assert!(started.elapsed() >= ms(10 + 20));
}

#[tokio::test]
async fn cached_answers_are_per_tenant() {
    let server = MockServer::start(vec![Reply::ok("a1"), Reply::ok("b1"), Reply::ok("a2")]).await;
    let provider = registry().provider(TENANT, config(&server, 0, 1)).unwrap();
    let db = sled::Config::new().temporary(true).open().unwrap();
    let cache = ResponseCache::new(db.open_tree("cache").unwrap(), Duration::from_secs(60));

    let first = provider
        .complete_cached(&cache, "acme", &ask())
        .await
        .unwrap();
    assert_eq!((first.text.as_str(), first.cached), ("a1", false));
    let again = provider
        .complete_cached(&cache, "acme", &ask())
        .await
        .unwrap();
    assert_eq!((again.text.as_str(), again.cached), ("a1", true));
    assert_eq!(server.count(), 1);

    let other = provider
        .complete_cached(&cache, "globex", &ask())
        .await
        .unwrap();
    assert_eq!((other.text.as_str(), other.cached), ("b1", false));
    assert_eq!(server.count(), 2);

    // Different params are a different request.
    let hot = registry()
        .provider(
            TENANT,
            config(&server, 0, 1).with_param("temperature", json!(1.0)),
        )
        .unwrap();
    let c = hot.complete_cached(&cache, "acme", &ask()).await.unwrap();
    assert_eq!((c.text.as_str(), c.cached), ("a2", false));
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn builtin_echo_and_mock_need_no_network() {
    let reg = registry();
    let echo = reg
        .provider(TENANT, ProviderConfig::builtin("echo"))
        .unwrap();
    let c = echo.complete(&ask()).await.unwrap();
    assert_eq!(c.text, "2 + 2?");
    let usage = c.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (2 + 3, 3));

    let mock = reg
        .provider(
            TENANT,
            ProviderConfig::builtin("mock").with_param("responses", json!({"2 + 2?": "4"})),
        )
        .unwrap();
    assert_eq!(mock.complete(&ask()).await.unwrap().text, "4");

    let slow = reg
        .provider(
            TENANT,
            ProviderConfig::builtin("mock")
                .with_param("latency_ms", json!(300))
                .with_timeout(ms(50))
                .with_retry(RetryPolicy::none()),
        )
        .unwrap();
    assert_eq!(
        slow.complete(&ask()).await.unwrap_err().kind,
        ErrorKind::Timeout
    );
}

#[tokio::test]
async fn builtin_mock_failures_replay_exactly_and_are_retried() {
    let make = || {
        registry()
            .provider(
                TENANT,
                ProviderConfig::builtin("mock")
                    .with_param("error_rate", json!(0.5))
                    .with_param("seed", json!(3))
                    .with_retry(RetryPolicy::new(2, ms(1), ms(2))),
            )
            .unwrap()
    };
    let (a, b) = (make(), make());
    let mut outcomes = Vec::new();
    for i in 0..40 {
        let msgs = [ChatMessage::user(format!("case {i}"))];
        let x = a
            .complete(&msgs)
            .await
            .map(|c| c.attempts)
            .map_err(|e| e.attempts);
        let y = b
            .complete(&msgs)
            .await
            .map(|c| c.attempts)
            .map_err(|e| e.attempts);
        assert_eq!(x, y, "case {i}");
        outcomes.push(x);
    }
    assert!(outcomes.contains(&Ok(1)));
    assert!(
        outcomes.iter().any(|o| matches!(o, Ok(n) if *n > 1)),
        "some succeed on retry"
    );
    assert!(outcomes.contains(&Err(3)), "some exhaust the retries");
}
