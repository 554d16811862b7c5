//! Injected faults: statuses with `Retry-After`, broken bodies, resets, hangs and latency.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use super::{USER, client, id_token, post, post_credentials, seeded, stara_tokens};
use crate::standin::{Fault, RetryAfter, Route};

#[tokio::test]
async fn status_faults_carry_retry_after_then_recover() {
    let stand_in = seeded().await;
    let url = format!("{}/autenticacao", stand_in.stara_url());
    let login = json!({ "login": "grower@example.com", "password": "stara-pw" });
    let at = SystemTime::now() + Duration::from_secs(120);
    stand_in.inject(
        Route::StaraAuth,
        Fault::StatusWithRetryAfter(429, RetryAfter::Seconds(7)),
        1,
    );
    stand_in.inject(
        Route::StaraAuth,
        Fault::StatusWithRetryAfter(503, RetryAfter::HttpDate(at)),
        1,
    );
    stand_in.inject(Route::StaraAuth, Fault::Status(500), 1);

    let first = client().post(&url).json(&login).send().await.expect("post");
    assert_eq!(first.status(), 429);
    assert_eq!(first.headers()["retry-after"], "7");
    let second = client().post(&url).json(&login).send().await.expect("post");
    assert_eq!(second.status(), 503);
    let date = second.headers()["retry-after"].to_str().expect("ascii");
    let parsed = httpdate::parse_http_date(date).expect("IMF-fixdate");
    let drift = parsed.duration_since(at).unwrap_or_else(|error| error.duration());
    assert!(drift < Duration::from_secs(1), "HTTP dates have second precision");
    let third = client().post(&url).json(&login).send().await.expect("post");
    assert_eq!(third.status(), 500);
    assert!(third.json::<Value>().await.is_ok(), "fault bodies are JSON");
    let (status, _) = post(url, login).await;
    assert_eq!(status, 200, "faults are used up");
    assert_eq!(stand_in.count(Route::StaraAuth), 4);
    assert_eq!(stand_in.pending_faults(Route::StaraAuth), 0);
}

#[tokio::test]
async fn body_faults() {
    let stand_in = seeded().await;
    let auth = stara_tokens(&stand_in).await;
    stand_in.inject(Route::StaraToken, Fault::MalformedJson, 1);
    stand_in.inject(Route::StaraToken, Fault::MissingFields, 1);
    let url = format!("{}/token", stand_in.stara_url());
    let body = json!({ "apiKey": auth["apiKey"] });
    let malformed = client().post(&url).json(&body).send().await.expect("post");
    assert_eq!(malformed.status(), 200);
    assert_eq!(malformed.text().await.expect("text"), "{not json");
    let (status, empty) = post(url.clone(), body.clone()).await;
    assert_eq!((status.as_u16(), empty), (200, json!({})));
    let (status, tokens) = post(url, body).await;
    assert_eq!(status, 200);
    assert!(tokens["accessToken"].is_string());
}

#[tokio::test]
async fn reset_is_a_transport_error_not_a_status() {
    let stand_in = seeded().await;
    stand_in.inject(Route::LeafAuth, Fault::Reset, 1);
    let url = format!("{}/api/authenticate", stand_in.leaf_url());
    let body = json!({ "username": "owner", "password": "leaf-pw", "rememberMe": "true" });
    let error = client()
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect_err("connection reset");
    assert!(
        error.status().is_none() && !error.is_timeout(),
        "unexpected error kind: {error:?}"
    );
    let (status, _) = post(url, body).await;
    assert_eq!(status, 200);
    assert_eq!(stand_in.count(Route::LeafAuth), 2);
}

#[tokio::test]
async fn hang_makes_the_client_time_out_and_latency_delays() {
    let stand_in = seeded().await;
    stand_in.inject(Route::StaraAuth, Fault::Hang, 1);
    stand_in.inject(Route::StaraAuth, Fault::Latency(Duration::from_millis(300)), 1);
    let url = format!("{}/autenticacao", stand_in.stara_url());
    let login = json!({ "login": "grower@example.com", "password": "stara-pw" });
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let error = impatient.post(&url).json(&login).send().await.expect_err("hang");
    assert!(error.is_timeout(), "expected a timeout: {error:?}");

    let started = Instant::now();
    let (status, _) = post(url, login).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn global_latency_applies_to_every_request() {
    let stand_in = seeded().await;
    stand_in.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    id_token(&stand_in).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn process_then_reset_stores_but_loses_the_response() {
    let stand_in = seeded().await;
    let tokens = stara_tokens(&stand_in).await;
    let token = id_token(&stand_in).await;
    stand_in.inject(Route::LeafPostCredentials, Fault::ProcessThenReset, 1);
    let error = post_credentials(&stand_in, &token, &tokens)
        .await
        .expect_err("lost response");
    assert!(
        error.status().is_none() && !error.is_timeout(),
        "unexpected error kind: {error:?}"
    );
    assert_eq!(
        stand_in.credential(USER).map(|view| view.status),
        Some("OK".to_owned())
    );
    let retry = post_credentials(&stand_in, &token, &tokens).await.expect("post");
    assert_eq!(
        retry.status(),
        409,
        "the first attempt did create the credentials"
    );
}
