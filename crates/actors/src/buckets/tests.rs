use super::*;

fn item(key: &str, hits: u64) -> CheckItem {
    CheckItem {
        key: key.into(),
        algorithm: Algorithm::TokenBucket,
        limit: Limit::new(100, 60_000),
        hits,
    }
}

async fn admitted(b: &Buckets, key: &str, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        let r = b.check(vec![item(key, 1)]).await;
        if matches!(&r[0], Ok(d) if d.status == colony_ratelimit::Status::UnderLimit) {
            ok += 1;
        }
    }
    ok
}

#[tokio::test]
async fn exactly_the_limit_is_admitted_and_keys_are_independent() {
    let b = Buckets::start(BucketsConfig {
        shards: 4,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(admitted(&b, "a", 150).await, 100);
    assert_eq!(admitted(&b, "b", 50).await, 50);
    // A batch keeps its order across shards; invalid limits fail alone.
    let mut bad = item("c", 1);
    bad.limit = Limit::new(0, 1000);
    let r = b
        .check(vec![item("a", 1), bad, item("d", 0), item("b", 1)])
        .await;
    assert!(matches!(&r[0], Ok(d) if d.status == colony_ratelimit::Status::OverLimit));
    assert!(matches!(&r[1], Err(BucketError::Limit(_))));
    assert!(
        matches!(&r[2], Ok(d) if d.remaining == 100),
        "peek of a new bucket: {:?}",
        r[2]
    );
    assert!(matches!(&r[3], Ok(d) if d.remaining == 49));
    assert_eq!(b.len().await, 2, "peeks create no bucket");
    b.stop().await;
}

#[tokio::test]
async fn a_panicking_shard_is_restarted_and_service_continues() {
    let b = Buckets::start(BucketsConfig {
        shards: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(admitted(&b, "k", 3).await, 3);
    b.inject_panic(None);
    // Calls during the restart are retried once; poll until served again.
    let mut served = false;
    for _ in 0..100 {
        if b.check(vec![item("k", 1)]).await[0].is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "service continues after the shards panicked");
    assert_eq!(b.restarts(), 2);
    b.stop().await;
}

#[tokio::test]
async fn overload_is_refused_not_queued() {
    let b = Buckets::start(BucketsConfig {
        shards: 1,
        max_in_flight_per_shard: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    // Hold the only permit, as a batch in flight would.
    let held = b.permits[0].clone().try_acquire_owned().unwrap();
    assert_eq!(
        b.check(vec![item("x", 1)]).await[0],
        Err(BucketError::Overloaded)
    );
    drop(held);
    assert!(b.check(vec![item("x", 1)]).await[0].is_ok());
    b.stop().await;
}
