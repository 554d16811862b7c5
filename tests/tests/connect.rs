//! End to end: the compiled `connect` binary, driven through the Lambda Runtime API with the
//! sample events, against moto (Secrets Manager) and the Stara/Leaf stand-in over HTTP.
//!
//! Every test ends with a leak scan: no password or token the bed issued may appear in the
//! function's logs or in any response.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use testbed::bed::{
    Bed, Running, api_event, api_response, batch_failures, connect_api_event, connect_body,
    disconnect_api_event, sqs_event,
};
use testbed::{Fault, RetryAfter, Route};

async fn connect_bed() -> (Bed, Running) {
    let bed = Bed::start().await;
    let running = bed.run("connect", &[]).await;
    (bed, running)
}

/// The log lines (JSON objects) whose message is `message`.
fn log_lines(running: &Running, message: &str) -> Vec<Value> {
    running
        .function
        .log_json()
        .into_iter()
        .filter(|l| l["message"] == message)
        .collect()
}

/// A span field (`requestId`, `leafUserId`) of a JSON log line.
fn span_field(line: &Value, field: &str) -> Option<String> {
    line["spans"]
        .as_array()?
        .iter()
        .find_map(|s| s.get(field).and_then(Value::as_str).map(str::to_owned))
}

#[tokio::test]
async fn api_connects_a_grower() {
    let (bed, running) = connect_bed().await;
    let grower = bed.add_grower().await;

    let invocation = bed
        .invoke(&running, connect_api_event(&grower.leaf_user_id, false))
        .await;
    let (status, body) = api_response(&invocation);

    assert_eq!(status, 201, "{body}");
    assert_eq!(body["outcome"], "connected");
    assert_eq!(body["leafUserId"], grower.leaf_user_id.as_str());
    assert_eq!(body["leafStatus"], "OK");
    let held = bed
        .standin
        .credential(&grower.leaf_user_id)
        .expect("Leaf holds credentials");
    assert_eq!(body["credentialsId"], held.id.as_str());
    assert_eq!(held.status, "OK");
    assert_eq!(bed.standin.count(Route::StaraAuth), 1);
    assert_eq!(bed.standin.count(Route::StaraToken), 1);
    assert_eq!(bed.standin.count(Route::LeafPostCredentials), 1);
    assert!(bed.standin.unrouted().is_empty(), "{:?}", bed.standin.unrouted());

    // One structured line for the outcome, with the request id, the user and the upstream time.
    let lines = log_lines(&running, "connect finished");
    assert_eq!(lines.len(), 1, "{:?}", running.function.logs());
    let line = &lines[0];
    assert_eq!(
        span_field(line, "requestId").as_deref(),
        Some(invocation.request_id.as_str())
    );
    assert_eq!(
        span_field(line, "leafUserId").as_deref(),
        Some(grower.leaf_user_id.as_str())
    );
    assert_eq!(line["outcome"], "connected");
    assert_eq!(line["level"], "INFO");
    assert!(line["upstreamMs"].is_u64());
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn the_sample_api_event_works_as_shipped() {
    let (bed, running) = connect_bed().await;
    let event = testbed::load_event("connect-api.json");
    let body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
    let id = body["leafUserId"].as_str().unwrap().to_owned();
    let grower = testbed::bed::Grower {
        leaf_user_id: id,
        login: "sample".into(),
        password: "sample-pw-1".into(),
    };
    bed.standin.add_stara_account(&grower.login, &grower.password);
    bed.standin.add_leaf_user(&grower.leaf_user_id);
    bed.store_login(&grower).await;

    let (status, body) = api_response(&bed.invoke(&running, event).await);
    assert_eq!((status, body["outcome"].as_str()), (201, Some("connected")));
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn sqs_connects_every_grower_of_a_batch() {
    let (bed, running) = connect_bed().await;
    let a = bed.add_grower().await;
    let b = bed.add_grower().await;

    let event = sqs_event(&[
        connect_body(&a.leaf_user_id, false),
        connect_body(&b.leaf_user_id, false),
    ]);
    let invocation = bed.invoke(&running, event).await;

    assert!(batch_failures(&invocation).is_empty());
    for grower in [&a, &b] {
        assert_eq!(bed.standin.credential(&grower.leaf_user_id).unwrap().status, "OK");
    }
    assert_eq!(bed.standin.count(Route::LeafPostCredentials), 2);
    let lines = log_lines(&running, "connect finished");
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["trigger"] == "sqs"
        && span_field(l, "requestId").as_deref() == Some(invocation.request_id.as_str())));
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn the_sample_sqs_event_is_accepted() {
    let (bed, running) = connect_bed().await;
    // The sample's user is unknown to this Leaf: a permanent failure, logged and not retried.
    let invocation = bed
        .invoke(&running, testbed::load_event("connect-sqs.json"))
        .await;
    assert!(batch_failures(&invocation).is_empty());
    let failed = log_lines(&running, "connect failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["code"], "leaf_user_not_found");
    assert_eq!(failed[0]["retryable"], false);
}

#[tokio::test]
async fn a_repeat_is_already_connected_and_calls_nothing_at_stara() {
    let (bed, running) = connect_bed().await;
    let grower = bed.add_grower().await;
    let first = api_response(
        &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
            .await,
    );
    assert_eq!(first.0, 201);

    let (status, body) = api_response(
        &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
            .await,
    );

    assert_eq!(status, 200);
    assert_eq!(body["outcome"], "already_connected");
    assert_eq!(body["credentialsId"], first.1["credentialsId"]);
    assert_eq!(bed.standin.count(Route::LeafPostCredentials), 1, "no second POST");
    assert_eq!(bed.standin.count(Route::StaraAuth), 1, "no second Stara login");
    assert_eq!(bed.standin.count(Route::StaraToken), 1);
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn force_replaces_working_credentials() {
    let (bed, running) = connect_bed().await;
    let grower = bed.add_grower().await;
    bed.standin.set_credential(&grower.leaf_user_id, "OK");
    let old = bed.standin.credential(&grower.leaf_user_id).unwrap();

    let (status, body) = api_response(
        &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, true))
            .await,
    );

    assert_eq!(status, 201, "{body}");
    assert_eq!(body["outcome"], "reconnected");
    assert_eq!(body["replacedStatus"], "OK");
    let new = bed.standin.credential(&grower.leaf_user_id).unwrap();
    assert_ne!(new.id, old.id);
    assert_eq!(bed.standin.count(Route::LeafDeleteCredentials), 1);
    assert_eq!(bed.standin.count(Route::LeafPostCredentials), 1);
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn broken_credentials_are_replaced_without_force() {
    let (bed, running) = connect_bed().await;
    let grower = bed.add_grower().await;
    bed.standin.set_credential(&grower.leaf_user_id, "INVALID");

    let (status, body) = api_response(
        &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
            .await,
    );

    assert_eq!(
        (status, body["outcome"].as_str(), body["replacedStatus"].as_str()),
        (201, Some("reconnected"), Some("INVALID"))
    );
    assert_eq!(bed.standin.credential(&grower.leaf_user_id).unwrap().status, "OK");
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn bad_input_gets_a_clear_400_and_no_upstream_call() {
    let (bed, running) = connect_bed().await;
    let id = uuid::Uuid::new_v4().to_string();
    let oversized = json!({"leafUserId": id, "padding": "x".repeat(17 * 1024)}).to_string();
    let cases: Vec<(String, &str)> = vec![
        ("this is not json".into(), "not valid JSON"),
        ("".into(), "empty"),
        ("{}".into(), "`leafUserId` is required"),
        (
            json!({"leafUserId": 12}).to_string(),
            "`leafUserId` must be a string",
        ),
        (
            json!({"leafUserId": id, "force": "yes"}).to_string(),
            "`force` must be true or false",
        ),
        (json!({"leafUserId": "not-a-uuid"}).to_string(), "must be a UUID"),
        (json!({"leafUserId": id, "extra": 1}).to_string(), "unknown field"),
        (oversized, "larger than 16 KiB"),
    ];
    for (body, expected) in cases {
        let (status, response) = api_response(&bed.invoke(&running, api_event(&body)).await);
        assert_eq!(status, 400, "{body:.80}");
        assert_eq!(response["error"]["code"], "invalid_request");
        assert!(
            response["error"]["message"].as_str().unwrap().contains(expected),
            "{body:.80} → {response}"
        );
    }
    // A body API Gateway marked as base64 that is not.
    let mut event = connect_api_event(&id, false);
    event["isBase64Encoded"] = json!(true);
    event["body"] = json!("%%% not base64 %%%");
    assert_eq!(api_response(&bed.invoke(&running, event).await).0, 400);
    // Unknown routes.
    let mut event = connect_api_event(&id, false);
    event["routeKey"] = json!("$default");
    event["rawPath"] = json!("/elsewhere");
    assert_eq!(api_response(&bed.invoke(&running, event).await).0, 404);

    assert!(
        bed.standin.counts().values().all(|&n| n == 0),
        "{:?}",
        bed.standin.counts()
    );
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn a_missing_login_secret_is_404_without_calling_stara() {
    let (bed, running) = connect_bed().await;
    let grower = bed.add_grower_without_secret().await;

    let (status, body) = api_response(
        &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
            .await,
    );

    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "grower_login_not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&bed.grower_prefix),
        "names the secret: {body}"
    );
    assert_eq!(bed.standin.count(Route::StaraAuth), 0);
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn a_rejected_password_is_422_and_deletes_nothing() {
    let (bed, running) = connect_bed().await;
    let mut grower = bed.add_grower().await;
    bed.standin.set_credential(&grower.leaf_user_id, "INVALID");
    grower.password = "wrong-password-123".into();
    bed.store_login(&grower).await;

    let (status, body) = api_response(
        &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
            .await,
    );

    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "stara_login_rejected");
    assert_eq!(
        bed.standin.count(Route::StaraAuth),
        1,
        "a refused login is not retried"
    );
    assert_eq!(
        bed.standin.count(Route::LeafDeleteCredentials),
        0,
        "the old credentials stay"
    );
    assert!(
        running
            .function
            .find_leaks(&["wrong-password-123".into()])
            .is_empty()
    );
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn an_unknown_leaf_user_is_404() {
    let (bed, running) = connect_bed().await;
    let grower = bed.add_grower().await;
    let stranger = uuid::Uuid::new_v4().to_string();
    let mut login = grower.clone();
    login.leaf_user_id = stranger.clone();
    bed.store_login(&login).await;

    let (status, body) = api_response(&bed.invoke(&running, connect_api_event(&stranger, false)).await);

    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "leaf_user_not_found");
    assert_eq!(bed.standin.count(Route::StaraAuth), 0);
    bed.assert_no_leaks(&[&running.function]);
}

/// Each transient fault, injected once or twice, is retried away.
#[tokio::test]
async fn transient_faults_are_recovered() {
    let cases: Vec<(Route, Fault, usize)> = vec![
        (Route::StaraAuth, Fault::Status(503), 2),
        (
            Route::StaraToken,
            Fault::StatusWithRetryAfter(429, RetryAfter::Seconds(1)),
            1,
        ),
        (
            Route::StaraToken,
            Fault::StatusWithRetryAfter(
                429,
                RetryAfter::HttpDate(SystemTime::now() + Duration::from_secs(2)),
            ),
            1,
        ),
        (Route::LeafGetCredentials, Fault::Status(502), 2),
        (Route::LeafAuth, Fault::Status(504), 1),
        (Route::StaraToken, Fault::Reset, 1),
        (Route::LeafUser, Fault::Reset, 2),
        // Slower than HTTP_TIMEOUT_MS (1.5 s in the bed): the attempt times out and is retried.
        (Route::StaraAuth, Fault::Latency(Duration::from_millis(2500)), 1),
    ];
    for (route, fault, times) in cases {
        let (bed, running) = connect_bed().await;
        let grower = bed.add_grower().await;
        bed.standin.inject(route, fault.clone(), times);

        let (status, body) = api_response(
            &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
                .await,
        );

        assert_eq!(status, 201, "{route:?} {fault:?}: {body}");
        assert_eq!(bed.standin.count(route), times + 1, "{route:?} {fault:?}");
        assert_eq!(bed.standin.count(Route::LeafPostCredentials), 1);
        bed.assert_no_leaks(&[&running.function]);
    }
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (bed, running) = connect_bed().await;
    let grower = bed.add_grower().await;
    bed.standin.inject(
        Route::StaraAuth,
        Fault::StatusWithRetryAfter(429, RetryAfter::Seconds(1)),
        1,
    );

    assert_eq!(
        api_response(
            &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
                .await
        )
        .0,
        201
    );

    let attempts = bed.standin.requests(Route::StaraAuth);
    assert_eq!(attempts.len(), 2);
    let gap = attempts[1].at.duration_since(attempts[0].at);
    assert!(gap >= Duration::from_millis(950), "waited only {gap:?}");
}

#[tokio::test]
async fn a_failed_post_is_checked_with_a_get_before_posting_again() {
    let (bed, running) = connect_bed().await;
    let grower = bed.add_grower().await;
    bed.standin
        .inject(Route::LeafPostCredentials, Fault::Status(503), 1);

    let (status, _) = api_response(
        &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
            .await,
    );

    assert_eq!(status, 201);
    assert_eq!(bed.standin.count(Route::LeafPostCredentials), 2);
    // GET before the first POST, and GET between the two POSTs.
    assert_eq!(bed.standin.count(Route::LeafGetCredentials), 2);
    let first_post = bed.standin.requests(Route::LeafPostCredentials)[0].at;
    let second_post = bed.standin.requests(Route::LeafPostCredentials)[1].at;
    let get_between = bed
        .standin
        .requests(Route::LeafGetCredentials)
        .iter()
        .any(|r| r.at > first_post && r.at < second_post);
    assert!(get_between, "a GET must come between the two POSTs");
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn a_lost_post_answer_never_makes_a_duplicate() {
    let (bed, running) = connect_bed().await;
    let grower = bed.add_grower().await;
    bed.standin
        .inject(Route::LeafPostCredentials, Fault::ProcessThenReset, 1);

    let (status, body) = api_response(
        &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
            .await,
    );

    assert_eq!(status, 201, "{body}");
    assert_eq!(body["outcome"], "connected");
    assert_eq!(
        bed.standin.count(Route::LeafPostCredentials),
        1,
        "the GET found the stored credentials"
    );
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn an_expired_leaf_token_is_renewed_once() {
    let (bed, running) = connect_bed().await;
    let first = bed.add_grower().await;
    let second = bed.add_grower().await;
    assert_eq!(
        api_response(
            &bed.invoke(&running, connect_api_event(&first.leaf_user_id, false))
                .await
        )
        .0,
        201
    );
    assert_eq!(bed.standin.count(Route::LeafAuth), 1);

    bed.standin.expire_leaf_tokens();
    let (status, _) = api_response(
        &bed.invoke(&running, connect_api_event(&second.leaf_user_id, false))
            .await,
    );

    assert_eq!(status, 201);
    assert_eq!(
        bed.standin.count(Route::LeafAuth),
        2,
        "exactly one re-authentication"
    );
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn the_leaf_token_is_kept_between_invocations() {
    let (bed, running) = connect_bed().await;
    for _ in 0..3 {
        let grower = bed.add_grower().await;
        assert_eq!(
            api_response(
                &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
                    .await
            )
            .0,
            201
        );
    }
    assert_eq!(bed.standin.count(Route::LeafAuth), 1);
}

#[tokio::test]
async fn a_hanging_upstream_ends_within_the_budget() {
    let (bed, running) = connect_bed().await;
    let grower = bed.add_grower().await;
    bed.standin.inject(Route::StaraToken, Fault::Hang, 100);

    let started = Instant::now();
    let (status, body) = api_response(
        &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
            .await,
    );
    let elapsed = started.elapsed();

    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "upstream_timeout");
    // UPSTREAM_BUDGET_MS is 5000 in the bed; allow for process and scheduling slack.
    assert!(elapsed < Duration::from_millis(6500), "took {elapsed:?}");
    assert!(
        bed.standin.count(Route::StaraToken) >= 2,
        "timeouts are retried while the budget lasts"
    );
    assert_eq!(bed.standin.count(Route::LeafPostCredentials), 0);
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn persistent_upstream_failures_map_to_5xx() {
    let cases = [
        (Route::StaraAuth, 503, "upstream_unavailable"),
        (Route::LeafGetCredentials, 502, "upstream_bad_gateway"),
        (Route::StaraToken, 500, "upstream_bad_gateway"),
    ];
    for (route, code, expected) in cases {
        let (bed, running) = connect_bed().await;
        let grower = bed.add_grower().await;
        bed.standin.inject(route, Fault::Status(code), 100);

        let (status, body) = api_response(
            &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
                .await,
        );

        assert_eq!(
            status,
            if code == 503 { 503 } else { 502 },
            "{route:?} {code}: {body}"
        );
        assert_eq!(body["error"]["code"], expected);
        let attempts = bed.standin.count(route);
        if code == 500 {
            assert_eq!(attempts, 1, "500 is not retried");
        } else {
            assert_eq!(attempts, 4, "RETRY_MAX_ATTEMPTS");
        }
        bed.assert_no_leaks(&[&running.function]);
    }
}

#[tokio::test]
async fn duplicate_records_in_a_batch_make_one_post() {
    let (bed, running) = connect_bed().await;
    let grower = bed.add_grower().await;
    let body = connect_body(&grower.leaf_user_id, false);

    let invocation = bed
        .invoke(&running, sqs_event(&[body.clone(), body.clone(), body]))
        .await;

    assert!(batch_failures(&invocation).is_empty());
    assert_eq!(bed.standin.count(Route::LeafPostCredentials), 1);
    assert_eq!(bed.standin.count(Route::StaraAuth), 1);
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn only_retryable_failures_go_back_to_the_queue() {
    let (bed, running) = connect_bed().await;
    let good = bed.add_grower().await;
    let flaky = bed.add_grower().await;
    let no_secret = bed.add_grower_without_secret().await;
    let mut wrong_password = bed.add_grower().await;
    wrong_password.password = "not-the-password-9".into();
    bed.store_login(&wrong_password).await;

    let bodies = vec![
        connect_body(&good.leaf_user_id, false),                // m0: connected
        "{not json".to_owned(),                                 // m1: permanent, dropped with a reason
        connect_body(&no_secret.leaf_user_id, false),           // m2: permanent (no login stored)
        connect_body(&wrong_password.leaf_user_id, false),      // m3: permanent (Stara refuses)
        connect_body(&flaky.leaf_user_id, false),               // m4: retryable (Leaf unavailable)
        connect_body(&uuid::Uuid::new_v4().to_string(), false), // m5: permanent (unknown user)
    ];
    // Make the flaky grower's first call fail persistently by holding broken credentials whose
    // DELETE keeps answering 503.
    bed.standin.set_credential(&flaky.leaf_user_id, "INVALID");
    bed.standin
        .inject(Route::LeafDeleteCredentials, Fault::Status(503), 100);

    let invocation = bed.invoke(&running, sqs_event(&bodies)).await;

    assert_eq!(batch_failures(&invocation), vec!["m4".to_owned()]);
    assert_eq!(bed.standin.credential(&good.leaf_user_id).unwrap().status, "OK");
    let rejected: Vec<String> = running
        .function
        .log_json()
        .iter()
        .filter_map(|l| l["code"].as_str().map(str::to_owned))
        .collect();
    for code in [
        "invalid_request",
        "grower_login_not_found",
        "stara_login_rejected",
        "leaf_user_not_found",
        "upstream_unavailable",
    ] {
        assert!(
            rejected.iter().any(|c| c == code),
            "no log line with code {code}: {rejected:?}"
        );
    }
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn an_unsupported_event_is_an_error_and_the_function_keeps_serving() {
    let (bed, running) = connect_bed().await;
    for event in [
        json!({"hello": "world"}),
        json!([1, 2, 3]),
        json!({"Records": [{"eventSource": "aws:s3"}]}),
    ] {
        let invocation = bed.invoke(&running, event).await;
        let error = invocation
            .outcome
            .expect_err("an unsupported event is an error result");
        assert_eq!(error["errorType"], "UnsupportedEvent");
        assert!(
            error["errorMessage"]
                .as_str()
                .unwrap()
                .contains("API Gateway HTTP API (2.0) and SQS")
        );
    }
    let grower = bed.add_grower().await;
    assert_eq!(
        api_response(
            &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
                .await
        )
        .0,
        201
    );
}

#[tokio::test]
async fn disconnect_removes_credentials() {
    let (bed, running) = connect_bed().await;
    let grower = bed.add_grower().await;
    bed.standin.set_credential(&grower.leaf_user_id, "OK");

    let first = bed
        .invoke(&running, disconnect_api_event(&grower.leaf_user_id))
        .await;
    assert_eq!(first.outcome.as_ref().unwrap()["statusCode"], 204);
    assert!(bed.standin.credential(&grower.leaf_user_id).is_none());

    let (status, body) = api_response(
        &bed.invoke(&running, disconnect_api_event(&grower.leaf_user_id))
            .await,
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_connected"))
    );

    let (status, body) = api_response(
        &bed.invoke(&running, disconnect_api_event(&uuid::Uuid::new_v4().to_string()))
            .await,
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("leaf_user_not_found"))
    );

    let (status, _) = api_response(&bed.invoke(&running, disconnect_api_event("nope")).await);
    assert_eq!(status, 400);
    bed.assert_no_leaks(&[&running.function]);
}

/// At DEBUG level too, across success, retries, re-authentication and failures, no secret leaks.
#[tokio::test]
async fn no_secret_reaches_logs_or_responses_even_at_debug() {
    let bed = Bed::start().await;
    let running = bed.run("connect", &[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")]).await;
    let growers = [
        bed.add_grower().await,
        bed.add_grower().await,
        bed.add_grower().await,
    ];
    bed.standin.set_credential(&growers[2].leaf_user_id, "INVALID");
    bed.standin
        .inject(Route::LeafPostCredentials, Fault::ProcessThenReset, 1);
    bed.standin.inject(Route::StaraToken, Fault::MalformedJson, 1);

    for grower in &growers {
        bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
            .await;
    }
    bed.standin.expire_leaf_tokens();
    bed.invoke(&running, connect_api_event(&growers[0].leaf_user_id, true))
        .await;
    bed.invoke(
        &running,
        sqs_event(&[connect_body(&growers[1].leaf_user_id, true)]),
    )
    .await;

    assert!(
        running.function.logs().iter().any(|l| l.contains("\"DEBUG\"")),
        "DEBUG lines were written"
    );
    assert!(
        running.function.log_json().len() == running.function.logs().len(),
        "every line is JSON"
    );
    bed.assert_no_leaks(&[&running.function]);
}
