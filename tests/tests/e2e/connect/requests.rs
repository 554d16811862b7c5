//! What connect answers to each request, through the HTTP API and SQS: new, repeated, forced
//! and broken connections, bad input, missing or wrong logins, unknown users, unsupported
//! events, and disconnects.

use serde_json::{Value, json};
use testbed::Route;
use testbed::bed::{
    api_event, api_response, batch_failures, connect_api_event, connect_body, disconnect_api_event,
    logged_for_request, sqs_event,
};

use super::{connect_bed, log_lines, span_field};

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
    // The answer says what to do; the log line of the same request names the secret.
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&bed.grower_prefix),
        "{body}"
    );
    let logged = logged_for_request(&running.function, &body);
    assert!(
        logged.iter().any(|l| l["error"]
            .as_str()
            .is_some_and(|e| e.contains(&bed.grower_prefix))),
        "the log names the secret: {logged:?}"
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
    // The user lookup runs beside the Stara login (one round trip fewer for a new grower), so
    // Stara may have issued tokens by the time Leaf's 404 arrives; nothing reaches Leaf with them.
    assert!(bed.standin.count(Route::StaraAuth) <= 1);
    assert_eq!(bed.standin.count(Route::LeafPostCredentials), 0);
    assert_eq!(bed.standin.count(Route::LeafDeleteCredentials), 0);
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
