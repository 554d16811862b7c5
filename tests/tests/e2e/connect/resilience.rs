//! connect under upstream trouble: transient and persistent faults, `Retry-After`, lost and
//! failed POSTs, expired Leaf tokens, hangs against the budget; batches with duplicates and
//! with failures of both kinds; and no secret in any log line, even at DEBUG.

use std::time::{Duration, Instant, SystemTime};

use testbed::bed::{Bed, api_response, batch_failures, connect_api_event, connect_body, sqs_event};
use testbed::{Fault, RetryAfter, Route};

use super::connect_bed;

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
