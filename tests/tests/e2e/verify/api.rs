//! verify's HTTP API: the health of one connection, never a token, and the events verify does
//! not serve.

use serde_json::{Value, json};
use testbed::bed::{Bed, api_response};
use testbed::{Route, load_event};

use super::{grower, verify_api_event};

#[tokio::test]
async fn the_api_reports_each_health_and_never_a_token() {
    let bed = Bed::start().await;
    let running = bed.run("verify", &[]).await;
    let healthy = grower(&bed, Some("OK")).await;
    bed.standin.add_event(&healthy.leaf_user_id, 200);
    let invalid = grower(&bed, Some("INVALID")).await;
    bed.standin.add_event(&invalid.leaf_user_id, 401);
    let revoked = grower(&bed, Some("OK")).await;
    bed.standin.add_event(&revoked.leaf_user_id, 200);
    bed.standin.add_event(&revoked.leaf_user_id, 401);
    let processing = grower(&bed, Some("PROCESSING")).await;
    let unknown_status = grower(&bed, Some("SOMETHING_NEW")).await;
    let missing = grower(&bed, None).await;

    let cases = [
        (&healthy, "healthy", Some("OK")),
        (&invalid, "unhealthy", Some("INVALID")),
        (&revoked, "unhealthy", Some("OK")),
        (&processing, "pending", Some("PROCESSING")),
        (&unknown_status, "pending", Some("SOMETHING_NEW")),
        (&missing, "missing", None),
    ];
    for (grower, health, status) in cases {
        let id = &grower.leaf_user_id;
        let (code, body) = api_response(&bed.invoke(&running, verify_api_event(id)).await);
        assert_eq!(code, 200, "{body}");
        let mut keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "createdTime",
                "credentialsId",
                "health",
                "lastEvent",
                "leafStatus",
                "leafUserId"
            ],
            "{body}"
        );
        assert_eq!(
            (
                body["leafUserId"].as_str(),
                body["health"].as_str(),
                body["leafStatus"].as_str()
            ),
            (Some(id.as_str()), Some(health), status),
            "{body}"
        );
        let held = bed.standin.credential(id);
        assert_eq!(
            body["credentialsId"].as_str(),
            held.as_ref().map(|c| c.id.as_str())
        );
        match bed.standin.events(id).last().filter(|_| held.is_some()) {
            Some(newest) => {
                assert_eq!(
                    body["lastEvent"],
                    json!({"statusCode": newest["statusCode"], "createdDate": newest["createdDate"]})
                )
            }
            None => assert_eq!(body["lastEvent"], Value::Null, "{body}"),
        }
    }

    let (code, body) = api_response(&bed.invoke(&running, verify_api_event("not-a-uuid")).await);
    assert_eq!(
        (code, &body["leafUserId"], body["error"]["code"].as_str()),
        (400, &Value::Null, Some("invalid_request"))
    );
    let stranger = uuid::Uuid::new_v4().to_string();
    let (code, body) = api_response(&bed.invoke(&running, verify_api_event(&stranger)).await);
    assert_eq!(
        (code, body["leafUserId"].as_str(), body["error"]["code"].as_str()),
        (404, Some(stranger.as_str()), Some("leaf_user_not_found"))
    );

    // The API never writes to Leaf, whatever it finds.
    for route in [
        Route::LeafPostCredentials,
        Route::LeafDeleteCredentials,
        Route::StaraAuth,
    ] {
        assert_eq!(bed.standin.count(route), 0, "{route:?}");
    }
    bed.assert_no_leaks(&[&running.function]);
}

#[tokio::test]
async fn events_verify_does_not_serve_are_refused_and_it_keeps_serving() {
    let bed = Bed::start().await;
    let running = bed.run("verify", &[]).await;
    // Verify's SQS trigger is the verify queue: a connect request there is refused for good
    // (logged, no batch item failure), not retried.
    let refused = bed
        .invoke(&running, load_event("connect-sqs.json"))
        .await
        .expect_ok();
    assert_eq!(refused, json!({"batchItemFailures": []}));
    assert!(
        running
            .function
            .log_json()
            .iter()
            .any(|l| l["message"] == "verify message refused" && l["code"] == "invalid_message")
    );
    for event in [
        json!({"source": "aws.events", "detail-type": "Object Created"}),
        json!([1]),
    ] {
        let error = bed.invoke(&running, event).await.outcome.expect_err("refused");
        assert_eq!(error["errorType"], "UnsupportedEvent");
    }
    let (code, _) = api_response(&bed.invoke(&running, load_event("connect-api.json")).await);
    assert_eq!(code, 404, "POST /connections belongs to connect");
    let healthy = grower(&bed, Some("OK")).await;
    let (code, body) = api_response(
        &bed.invoke(&running, verify_api_event(&healthy.leaf_user_id))
            .await,
    );
    assert_eq!((code, body["health"].as_str()), (200, Some("healthy")));
}
