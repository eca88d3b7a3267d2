//! The ceiling: `POST /v1/ratelimit/check` answered by a bare axum handler with a constant
//! JSON body (the request body is read, not parsed). Whatever Colony does per check costs
//! the difference between this and Colony.

use axum::http::header::CONTENT_TYPE;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;

/// `colony-bench serve-bare`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
}

const BODY: &str = r#"{"responses":[{"status":"under_limit","limit":1000000000,"remaining":999999999,"reset_after_ms":0}]}"#;

async fn check(_body: Bytes) -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    ([(CONTENT_TYPE, "application/json")], BODY)
}

/// Serves until killed.
pub fn run(args: &Args) -> anyhow::Result<()> {
    super::serve(&args.listen, async {
        Ok(Router::new().route("/v1/ratelimit/check", post(check)))
    })
}
