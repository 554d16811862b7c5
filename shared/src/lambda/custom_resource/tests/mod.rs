//! Requests to Leaf calls, with `FakeWebhooks`; `answers`: whole requests answered to a
//! `ResponseURL` on 127.0.0.1.

mod answers;

use async_trait::async_trait;
use secrecy::SecretString;

use super::webhook::{EVENTS, NOT_REGISTERED, Status, run};
use super::*;
use crate::adapters::leaf_webhooks::Webhook;
use crate::domain::error::{ConnectorError, Service, UpstreamError, UpstreamKind};
use crate::lambda::trigger::{self, Trigger};
use crate::testing::{FakeWebhooks, fixture};

const SECRET: &str = "webhook-secret-that-must-not-leak";
const URL: &str = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/leaf/alerts";
/// The sample stack is `stara-connect`.
const NAME: &str = "stara-connect-stara-connect";

/// The webhook secret, or none stored.
struct Secret(Option<&'static str>);

#[async_trait]
impl WebhookSecret for Secret {
    async fn webhook_secret(&self) -> Result<SecretString, ConnectorError> {
        self.0
            .map(SecretString::from)
            .ok_or_else(|| ConnectorError::Configuration("LEAF_WEBHOOK_SECRET_ID is not set".into()))
    }
}

fn sample(name: &str) -> CustomResourceRequest {
    match trigger::classify(fixture(name)) {
        Trigger::CustomResource(request) => *request,
        other => panic!("{name}: {other:?}"),
    }
}

fn create() -> CustomResourceRequest {
    sample("verify-custom-resource-create.json")
}

fn with(kind: &str, physical_id: Option<&str>) -> CustomResourceRequest {
    let mut request = create();
    request.request_type = kind.into();
    request.physical_resource_id = physical_id.map(str::to_owned);
    request
}

fn webhook(id: &str, name: &str, url: &str, events: &[&str]) -> Webhook {
    Webhook {
        id: id.into(),
        name: Some(name.into()),
        url: Some(url.into()),
        events: events.iter().map(|e| e.to_string()).collect(),
    }
}

fn holding(webhooks: Vec<Webhook>) -> FakeWebhooks {
    let fake = FakeWebhooks::default();
    *fake.webhooks.lock().unwrap() = webhooks;
    fake
}

async fn outcome(fake: &FakeWebhooks, request: &CustomResourceRequest) -> Outcome {
    let deadline = Deadline::after(Duration::from_secs(5));
    let outcome = run(request, fake, &Secret(Some(SECRET)), &deadline).await;
    assert!(!outcome.reason.contains(SECRET), "{}", outcome.reason);
    outcome
}

fn calls(fake: &FakeWebhooks) -> Vec<String> {
    fake.calls.lock().unwrap().clone()
}

fn register_call() -> String {
    format!("register {NAME} {URL}")
}

#[test]
fn the_samples_are_custom_resource_requests() {
    let create = create();
    assert_eq!(
        (create.request_type.as_str(), create.physical_resource_id),
        ("Create", None)
    );
    assert_eq!(create.resource_properties["Url"], URL);
    let delete = sample("verify-custom-resource-delete.json");
    assert_eq!(delete.request_type, "Delete");
    assert!(delete.physical_resource_id.is_some());
}

#[tokio::test]
async fn create_registers_the_webhook_and_answers_its_id() {
    let fake = FakeWebhooks::default();
    let done = outcome(&fake, &create()).await;
    assert_eq!(
        (done.status, done.physical_id.as_str()),
        (Status::Success, "wh-1")
    );
    assert_eq!(done.data, Some(json!({"WebhookId": "wh-1"})));
    assert_eq!(calls(&fake), [register_call()]);
    assert_eq!(
        *fake.webhooks.lock().unwrap(),
        [webhook("wh-1", NAME, URL, &EVENTS)]
    );
    assert_eq!(*fake.secrets.lock().unwrap(), [SECRET]);
}

#[tokio::test]
async fn update_replaces_the_old_webhook() {
    // The old one listens to the same events: it must go before the new one can come.
    let fake = holding(vec![webhook(
        "old-1",
        NAME,
        "https://old.example/leaf/alerts",
        &EVENTS,
    )]);
    let done = outcome(&fake, &with("Update", Some("old-1"))).await;
    assert_eq!(
        (done.status, done.physical_id.as_str()),
        (Status::Success, "wh-4")
    );
    assert!(done.reason.contains("replacing old-1"), "{}", done.reason);
    assert_eq!(
        calls(&fake),
        [
            register_call(),
            "list".into(),
            "remove old-1".into(),
            register_call()
        ]
    );
    assert_eq!(
        *fake.webhooks.lock().unwrap(),
        [webhook("wh-4", NAME, URL, &EVENTS)]
    );

    // The old one is gone already, or listens to other events: register first, then remove it.
    for old in [
        vec![],
        vec![webhook("old-1", "n", "https://x.example", &["otherEvent"])],
    ] {
        let fake = holding(old);
        let done = outcome(&fake, &with("Update", Some("old-1"))).await;
        assert_eq!(
            (done.status, done.physical_id.as_str()),
            (Status::Success, "wh-1")
        );
        assert_eq!(calls(&fake), [register_call(), "remove old-1".into()]);
        assert_eq!(fake.webhooks.lock().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn another_webhook_on_the_events_fails_the_request_and_is_named() {
    let theirs = webhook(
        "theirs-1",
        "legacy-alerts",
        "https://hooks.example/leaf",
        &[EVENTS[1]],
    );
    for (request, physical_id) in [
        (create(), NOT_REGISTERED),
        (with("Update", Some("old-1")), "old-1"),
    ] {
        let fake = holding(vec![theirs.clone()]);
        let done = outcome(&fake, &request).await;
        assert_eq!(
            (done.status, done.physical_id.as_str()),
            (Status::Failed, physical_id)
        );
        for part in [
            "another webhook already listens to credentialsLimitedPermission: 'legacy-alerts' \
             (id theirs-1, url https://hooks.example/leaf).",
            "LeafAlerts=Disabled",
            "DELETE /services/alerts/api/alerts/webhooks/theirs-1",
        ] {
            assert!(done.reason.contains(part), "{part}: {}", done.reason);
        }
        assert_eq!(calls(&fake), [register_call(), "list".into()], "nothing removed");
        assert_eq!(*fake.webhooks.lock().unwrap(), std::slice::from_ref(&theirs));
    }
}

#[tokio::test]
async fn our_own_webhook_found_registered_is_kept() {
    // A POST whose answer was lost, or a try of this request before the process died.
    let fake = holding(vec![webhook("wh-lost", NAME, URL, &EVENTS)]);
    let done = outcome(&fake, &create()).await;
    assert_eq!(
        (done.status, done.physical_id.as_str()),
        (Status::Success, "wh-lost")
    );
    assert_eq!(calls(&fake), [register_call(), "list".into()]);
}

#[tokio::test]
async fn delete_removes_the_webhook_and_a_missing_one_is_done() {
    let request = sample("verify-custom-resource-delete.json");
    let id = request.physical_resource_id.clone().unwrap();
    let fake = holding(vec![webhook(&id, NAME, URL, &EVENTS)]);
    let done = outcome(&fake, &request).await;
    assert_eq!((done.status, &done.physical_id), (Status::Success, &id));
    assert_eq!(done.reason, format!("Leaf webhook {id} removed"));
    let again = outcome(&fake, &request).await;
    assert_eq!(
        (again.status, again.reason),
        (Status::Success, format!("Leaf webhook {id} was already gone"))
    );
    assert_eq!(calls(&fake), [format!("remove {id}"), format!("remove {id}")]);
}

#[tokio::test]
async fn a_delete_after_a_failed_create_calls_no_one() {
    for physical_id in [Some(NOT_REGISTERED), Some(""), None] {
        let fake = FakeWebhooks::default();
        let done = outcome(&fake, &with("Delete", physical_id)).await;
        assert_eq!(
            (done.status, done.physical_id.as_str()),
            (Status::Success, NOT_REGISTERED)
        );
        assert!(calls(&fake).is_empty(), "{physical_id:?}");
    }
}

#[tokio::test]
async fn failures_are_answered_failed_with_what_went_wrong() {
    let unavailable = || {
        UpstreamError::new(
            Service::Leaf,
            "POST /alerts/webhooks",
            UpstreamKind::Unavailable,
            "HTTP 503",
        )
        .into()
    };
    let fake = FakeWebhooks::default();
    *fake.fail.lock().unwrap() = Some(unavailable());
    let done = outcome(&fake, &create()).await;
    assert_eq!(
        (done.status, done.physical_id.as_str()),
        (Status::Failed, NOT_REGISTERED)
    );
    assert!(
        done.reason
            .contains("not registered: Leaf POST /alerts/webhooks: HTTP 503"),
        "{}",
        done.reason
    );
    let done = outcome(&fake, &with("Delete", Some("wh-7"))).await;
    assert_eq!((done.status, done.physical_id.as_str()), (Status::Failed, "wh-7"));
    assert!(done.reason.contains("not removed"), "{}", done.reason);

    let mut no_url = create();
    no_url.resource_properties.remove("Url");
    let mut ftp_url = create();
    ftp_url
        .resource_properties
        .insert("Url".into(), json!("ftp://x.example/a"));
    let mut bad_stack = create();
    bad_stack.stack_id = "stara-connect".into();
    for (request, expected) in [
        (no_url, "ResourceProperties.Url"),
        (ftp_url, "ResourceProperties.Url"),
        (bad_stack, "StackId"),
        (with("Bogus", None), "RequestType"),
    ] {
        let fake = FakeWebhooks::default();
        let done = outcome(&fake, &request).await;
        assert_eq!(done.status, Status::Failed);
        assert!(done.reason.contains(expected), "{expected}: {}", done.reason);
        assert!(calls(&fake).is_empty());
    }

    let fake = FakeWebhooks::default();
    let deadline = Deadline::after(Duration::from_secs(5));
    let done = run(&create(), &fake, &Secret(None), &deadline).await;
    assert_eq!(done.status, Status::Failed);
    assert!(done.reason.contains("LEAF_WEBHOOK_SECRET_ID"), "{}", done.reason);
    assert!(calls(&fake).is_empty());
}
