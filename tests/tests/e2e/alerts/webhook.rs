//! `POST /leaf/alerts`: the signature over the raw bytes, what each kind of alert leads to, one
//! repair per alert however often Leaf delivers it, and the webhook secret in the leak checks.

use serde_json::{Value, json};
use testbed::alerts::{CONFIRMATION_BODY, alert_body, alert_event, base64_alert_event, sign};
use testbed::bed::capture_root;
use testbed::leaks;
use testbed::secret_state::{self, LOGIN_REJECTED_TAG};

use super::{ALERT_REASON, parts, world};

#[tokio::test]
async fn only_an_alert_signed_over_its_raw_bytes_is_accepted() {
    let w = world().await;
    let (grower, credentials) = w.connected_grower().await;
    let id = grower.leaf_user_id.as_str();
    let body = alert_body("credentialsUnauthenticated", &credentials);
    let secret = w.webhook_secret.as_str();
    let good = sign(secret, body.as_bytes());
    // The same JSON without Leaf's spaces: other bytes, so the signature no longer fits.
    let reformatted = serde_json::from_str::<Value>(&body).unwrap().to_string();
    let encoded = base64_alert_event(body.as_bytes(), None)["body"].clone();
    let over_base64_text = sign(secret, encoded.as_str().unwrap().as_bytes());

    // Each of these would queue a repair, were it signed right.
    let refused = [
        ("no signature", alert_event(&body, None)),
        (
            "another secret",
            alert_event(&body, Some(&sign("whsec-other", body.as_bytes()))),
        ),
        ("another body's", alert_event(&body, Some(&sign(secret, b"{}")))),
        ("reformatted body", alert_event(&reformatted, Some(&good))),
        ("not base64", alert_event(&body, Some("not base64!"))),
        ("empty", alert_event(&body, Some(""))),
        (
            "base64 body signed as text",
            base64_alert_event(body.as_bytes(), Some(&over_base64_text)),
        ),
    ];
    let count = refused.len();
    for (case, event) in refused {
        let (status, answer) = w.post(event).await;
        assert_eq!(
            (
                status,
                answer["outcome"].as_str(),
                answer["error"]["code"].as_str()
            ),
            (401, Some("failed"), Some("invalid_signature")),
            "{case}: {answer}"
        );
    }
    assert!(w.queued(0).await.is_empty(), "a refused alert queues nothing");
    assert_eq!(w.metric_lines("AlertsRefused"), count, "each refusal is counted");
    let logged: Vec<Value> = w.verify.function.log_json();
    assert!(
        !logged.iter().any(|l| l["code"] == "alert_signature_invalid"),
        "refusals are logged at DEBUG only (the function logs at INFO)"
    );

    // Signed right: accepted, whether API Gateway hands the body over as text or as base64.
    let (status, answer) = w.alert(&body).await;
    let queued = json!({"outcome": "repair_queued", "leafUserId": id});
    assert_eq!((status, &answer), (202, &queued), "{answer}");
    let again = alert_body("credentialsUnauthenticated", &credentials);
    let signed = sign(secret, again.as_bytes());
    let (status, answer) = w.post(base64_alert_event(again.as_bytes(), Some(&signed))).await;
    assert_eq!((status, &answer), (202, &queued), "base64: {answer}");
    let messages = w.queued(2).await;
    assert_eq!(messages.len(), 2, "two alerts, two repairs");
    for message in &messages {
        let (body, group, _) = parts(message);
        let repair = json!({"leafUserId": id, "force": true, "reason": ALERT_REASON});
        assert_eq!((body, group.as_str()), (repair, id));
    }

    // Leaf's registration check, signed; unsigned it is refused like any other request.
    let (status, answer) = w.alert(CONFIRMATION_BODY).await;
    assert_eq!((status, answer), (200, json!({"outcome": "confirmed"})));
    let (status, _) = w.post(alert_event(CONFIRMATION_BODY, None)).await;
    assert_eq!(status, 401);
    w.assert_no_leaks();
}

#[tokio::test]
async fn an_alert_delivered_twice_queues_one_repair() {
    let w = world().await;
    let (grower, credentials) = w.connected_grower().await;
    let id = grower.leaf_user_id.as_str();
    w.bed.standin.set_status(id, "INVALID");
    let body = alert_body("credentialsUnauthenticated", &credentials);

    for delivery in 1..=2 {
        let (status, answer) = w.alert(&body).await;
        assert_eq!(
            (status, answer["outcome"].as_str()),
            (202, Some("repair_queued")),
            "{delivery}"
        );
    }
    let messages = w.queued(1).await;
    assert_eq!(messages.len(), 1, "the same alert twice: one repair");
    let (repair, group, dedup) = parts(&messages[0]);
    assert_eq!(
        repair,
        json!({"leafUserId": id, "force": true, "reason": ALERT_REASON})
    );
    assert_eq!(group, id);
    assert!(
        dedup.starts_with(&format!("{id}-")) && dedup.len() <= 128,
        "{dedup}"
    );

    // Another alert about the same credentials is another alert: its own deduplication id.
    let (status, _) = w
        .alert(&alert_body("credentialsUnauthenticated", &credentials))
        .await;
    assert_eq!(status, 202);
    let later = w.queued(1).await;
    assert_eq!(later.len(), 1);
    assert_ne!(
        parts(&later[0]).2,
        dedup,
        "the id is the alert's, not the grower's"
    );

    // Connect repairs once.
    assert!(w.deliver(&messages).await.is_empty());
    assert_eq!(w.outcomes(id), ["connected", "reconnected"]);
    assert_eq!(w.bed.standin.credential(id).expect("credentials").status, "OK");
    w.assert_no_leaks();
}

/// A Stara alert whose `provider` (and `credential`) is another provider's.
fn other_provider(body: &str) -> String {
    body.replace(r#"": "Stara""#, r#"": "JohnDeere""#)
}

#[tokio::test]
async fn alerts_that_queue_nothing() {
    let w = world().await;
    let (connected, credentials) = w.connected_grower().await;
    let (disconnected, old_credentials) = w.connected_grower().await;
    let (rejected, rejected_credentials) = w.connected_grower().await;
    let delete = testbed::bed::disconnect_api_event(&disconnected.leaf_user_id);
    assert_eq!(
        testbed::bed::api_response(&w.bed.invoke(&w.connect, delete).await).0,
        204
    );
    let rejected_secret = w.bed.secret_id(&rejected.leaf_user_id);
    let version = secret_state::current_version(&rejected_secret).await;
    secret_state::tag(&rejected_secret, LOGIN_REJECTED_TAG, &version).await;
    let stranger = uuid::Uuid::new_v4().to_string();
    let before = w.bed.standin.counts();

    let unauthenticated = |credentials: &str| alert_body("credentialsUnauthenticated", credentials);
    let cases = [
        (
            unauthenticated(&stranger),
            json!({"outcome": "unknown_credentials"}),
        ),
        (
            alert_body("credentialsLimitedPermission", &credentials),
            json!({"outcome": "limited_permission"}),
        ),
        (
            alert_body("fieldCreated", &credentials),
            json!({"outcome": "ignored"}),
        ),
        (
            other_provider(&unauthenticated(&credentials)),
            json!({"outcome": "ignored"}),
        ),
        ("[1, 2]".to_owned(), json!({"outcome": "ignored"})),
        (
            unauthenticated(&old_credentials),
            json!({"outcome": "skipped_disconnected", "leafUserId": disconnected.leaf_user_id}),
        ),
        (
            unauthenticated(&rejected_credentials),
            json!({"outcome": "skipped_login_rejected", "leafUserId": rejected.leaf_user_id}),
        ),
    ];
    for (body, want) in cases {
        let (status, answer) = w.alert(&body).await;
        assert_eq!((status, &answer), (200, &want), "{body}");
    }
    assert!(w.queued(0).await.is_empty(), "none of these queues a repair");
    assert_eq!(w.bed.standin.counts(), before, "nor calls Stara or Leaf");
    assert_eq!(w.metric_lines("AlertsUnknownCredentials"), 1);
    assert_eq!(w.metric_lines("AlertsLimitedPermission"), 1);
    let warned = w
        .verify
        .function
        .log_json()
        .into_iter()
        .find(|l| l["outcome"] == "limited_permission");
    let warned = warned.expect("the limited permission is logged");
    assert_eq!(
        (warned["level"].as_str(), warned["credentialId"].as_str()),
        (Some("WARN"), Some(credentials.as_str()))
    );
    let held = w
        .bed
        .standin
        .credential(&connected.leaf_user_id)
        .expect("credentials");
    assert_eq!(held.id, credentials, "the grower's credentials are untouched");
    w.assert_no_leaks();
}

#[tokio::test]
async fn an_alert_over_64_kib_is_refused_before_its_signature_is_checked() {
    let w = world().await;
    let (_, credentials) = w.connected_grower().await;
    let small = alert_body("credentialsUnauthenticated", &credentials);
    for size in [64 * 1024 + 1, 100 * 1024] {
        // A valid alert, signed, padded with spaces past the limit.
        let body = format!("{small}{}", " ".repeat(size - small.len()));
        assert_eq!(body.len(), size);
        let (status, answer) = w.alert(&body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (413, Some("payload_too_large")),
            "{size}: {answer}"
        );
    }
    // At the limit it is read.
    let body = format!("{small}{}", " ".repeat(64 * 1024 - small.len()));
    assert_eq!(w.alert(&body).await.0, 202);
    assert_eq!(w.queued(1).await.len(), 1);
    w.assert_no_leaks();
}

/// The secret's value never appears in a log line or a response, and the suite-wide leak scan
/// (`leak_scan`, over what every bed leaves in `target/e2e-capture`) looks for it.
#[tokio::test]
async fn the_webhook_secret_is_in_the_leak_checks() {
    let w = world().await;
    let (_, credentials) = w.connected_grower().await;
    let body = alert_body("credentialsUnauthenticated", &credentials);
    assert_eq!(w.alert(&body).await.0, 202);
    assert_eq!(w.post(alert_event(&body, Some("bad"))).await.0, 401);
    assert_eq!(w.alert(CONFIRMATION_BODY).await.0, 200);
    assert!(w.bed.secrets().contains(&w.webhook_secret));
    w.assert_no_leaks();

    // What the bed leaves behind for the scan.
    let run = w
        .bed
        .grower_prefix
        .split('/')
        .nth(1)
        .expect("a run id")
        .to_owned();
    let secret = w.webhook_secret.clone();
    drop(w);
    let captured = capture_root().join(&run);
    let secrets = std::fs::read_to_string(captured.join("secrets.txt")).expect("secrets.txt");
    assert!(
        secrets.lines().any(|l| l == secret),
        "the capture lists the webhook secret"
    );

    // The scan over this bed's capture: clean, and a line with the secret in it is found.
    let root = std::env::temp_dir().join(format!("alerts-leak-scan-{}", uuid::Uuid::new_v4()));
    let copy = root.join(&run);
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(&captured).unwrap().map(Result::unwrap) {
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let report = leaks::scan(&root).unwrap();
    assert!(
        report.hits.is_empty() && report.disclosures.is_empty(),
        "{report:?}"
    );
    assert!(report.files >= 3 && report.responses >= 3, "{report:?}");
    std::fs::write(copy.join("verify-0.log"), format!("{{\"error\":\"{secret}\"}}")).unwrap();
    let report = leaks::scan(&root).unwrap();
    assert_eq!(report.hits.len(), 1, "{report:?}");
    assert_eq!(report.hits[0].1, secret.len());
    std::fs::remove_dir_all(root).unwrap();
}
