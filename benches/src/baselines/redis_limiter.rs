//! The baseline users pick today: a minimal axum service answering the same
//! `POST /v1/ratelimit/check` body as Colony, where each item is one token-bucket check in
//! Redis by one Lua script (`EVALSHA`; the `redis` crate loads the script on `NOSCRIPT`)
//! over one multiplexed (pipelined) connection.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// `colony-bench serve-redis-limiter`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Redis server, `host:port`.
    #[arg(long)]
    pub redis: String,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Require `Authorization: Bearer <key>` (compared as is).
    #[arg(long)]
    pub api_key: Option<String>,
}

/// A standard token bucket: the hash holds `tokens` and `ts` (ms, Redis server time);
/// refill at `limit / duration` per ms, take `hits` if there are enough, write back and
/// expire after `duration`. Returns `{allowed, remaining, reset_after_ms}`.
pub const TOKEN_BUCKET_LUA: &str = r"
local limit = tonumber(ARGV[1])
local duration = tonumber(ARGV[2])
local hits = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = limit
  ts = now
end
local rate = limit / duration
tokens = math.min(limit, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= hits then
  tokens = tokens - hits
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], duration)
local reset = 0
if tokens < limit then
  reset = math.ceil((limit - tokens) / rate)
end
return {allowed, math.floor(tokens), reset}
";

#[derive(Debug, Deserialize)]
struct CheckBody {
    requests: Vec<Item>,
}

#[derive(Debug, Deserialize)]
struct Item {
    name: String,
    key: String,
    #[serde(default = "one")]
    hits: u64,
    limit: u64,
    duration_ms: u64,
}

fn one() -> u64 {
    1
}

#[derive(Debug)]
struct App {
    conn: redis::aio::MultiplexedConnection,
    script: redis::Script,
    auth: Option<String>,
}

async fn check(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(body): Json<CheckBody>,
) -> Response {
    if let Some(want) = &app.auth {
        let got = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if got != Some(want.as_str()) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    let mut responses = Vec::with_capacity(body.requests.len());
    let mut conn = app.conn.clone();
    for it in body.requests {
        let key = format!("rl:{}:{}", it.name, it.key);
        let res: redis::RedisResult<(i64, i64, i64)> = app
            .script
            .key(key)
            .arg(it.limit)
            .arg(it.duration_ms.max(1))
            .arg(it.hits)
            .invoke_async(&mut conn)
            .await;
        responses.push(match res {
            Ok((allowed, remaining, reset)) => json!({
                "status": if allowed == 1 { "under_limit" } else { "over_limit" },
                "limit": it.limit,
                "remaining": remaining,
                "reset_after_ms": reset,
            }),
            Err(e) => json!({ "error": e.to_string() }),
        });
    }
    Json(json!({ "responses": Value::Array(responses) })).into_response()
}

/// Serves until killed.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let client = redis::Client::open(format!("redis://{}/", args.redis))?;
    let auth = args.api_key.as_ref().map(|k| format!("Bearer {k}"));
    super::serve(&args.listen, async move {
        let conn = client.get_multiplexed_async_connection().await?;
        let app = Arc::new(App {
            conn,
            script: redis::Script::new(TOKEN_BUCKET_LUA),
            auth,
        });
        Ok(Router::new()
            .route("/v1/ratelimit/check", post(check))
            .with_state(app))
    })
}
