//! The document at random points of its history: `GET /v1/documents/{id}/content?at_version=V`
//! for `count` versions drawn uniformly (seeded) from 1 to the document's current version,
//! one request after another, timed from the client.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A small seeded generator (xorshift64*): the same seed draws the same points.
pub(crate) struct Draw(pub(crate) u64);

impl Draw {
    pub(crate) fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % below
    }
}

pub(crate) async fn run(http: &str, token: &str, doc: &str, count: usize, seed: u64) -> Value {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client builds");
    let get = |query: String| {
        let request = client
            .get(format!("{http}/v1/documents/{doc}/content?{query}"))
            .bearer_auth(token);
        async move {
            let started = Instant::now();
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let version = response
                .headers()
                .get("x-collab-content-version")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i64>().ok());
            let bytes = response.bytes().await.map_err(|e| e.to_string())?.len();
            if !status.is_success() {
                return Err(format!("{status}"));
            }
            Ok::<_, String>((started.elapsed(), version.unwrap_or(-1), bytes))
        }
    };
    let head = match get(String::new()).await {
        Ok((_, version, _)) if version > 0 => version,
        Ok(_) => return json!({ "error": "the document has no content yet" }),
        Err(error) => return json!({ "error": error }),
    };
    let mut draw = Draw(seed.max(1));
    let mut times = vec![];
    let mut mismatched = 0;
    let mut bytes = 0;
    for _ in 0..count {
        let version = 1 + draw.next(head as u64) as i64;
        match get(format!("at_version={version}")).await {
            Ok((elapsed, answered, size)) => {
                if answered != version {
                    mismatched += 1;
                }
                bytes += size;
                times.push(elapsed.as_secs_f64() * 1000.0);
            }
            Err(error) => return json!({ "error": error, "at_version": version }),
        }
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let ms = |p: f64| (super::percentile(&sorted, p) * 100.0).round() / 100.0;
    json!({
        "scenario": "history_points",
        "head_version": head,
        "points": count,
        "seed": seed,
        "wrong_version_answers": mismatched,
        "mean_text_bytes": bytes / count.max(1),
        "p50_ms": ms(50.0),
        "p90_ms": ms(90.0),
        "p99_ms": ms(99.0),
        "max_ms": ms(100.0),
    })
}
