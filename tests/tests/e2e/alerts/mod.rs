//! Repairs that do not wait for the sweep: Leaf's alerts webhook (`POST /leaf/alerts`) and the
//! Secrets Manager calls that create or change a grower's login (CloudTrail through
//! EventBridge), both served by the real `verify` binary, which queues a connect on the FIFO
//! queue in moto; a test hands what was queued to the real `connect` binary, as the queue's
//! trigger would. docs/DEPLOY.md ("Leaf alerts", "Changed logins") describes both.
//!
//! `webhook`: the signature, what each kind of alert leads to, one repair per alert however
//! often Leaf delivers it, and the webhook secret in the leak checks. `repair`: an alert about
//! broken credentials repaired end to end, and the new credentials found by the next alert.
//! `logins`: a created or changed login connects the grower; other secrets and a disconnected
//! grower are left alone.

mod logins;
mod repair;
mod webhook;

use aws_sdk_sqs::types::Message;
use aws_sdk_sqs::types::MessageSystemAttributeName as Attr;
use serde_json::Value;
use testbed::alerts::{alert_event, secret_event, sign, store_webhook_secret};
use testbed::bed::{Bed, Grower, Running, api_response, batch_failures, connect_api_event};
use testbed::queue::{connect_queue, sqs_event_of};
use testbed::secret_state;

/// The tag connect keeps the id of the Leaf credentials it attached in.
const CREDENTIALS_TAG: &str = "stara-connect:credentials-id";
/// The `reason` of a repair an alert queued.
const ALERT_REASON: &str = "alert_credentials_unauthenticated";

/// Both functions of one deployment with alerts on: the webhook secret in moto, the queue
/// between verify and connect.
struct World {
    bed: Bed,
    connect: Running,
    verify: Running,
    queue: String,
    /// The webhook's signing secret (its value).
    webhook_secret: String,
}

async fn world() -> World {
    let bed = Bed::start().await;
    let queue = connect_queue("alerts").await;
    let (secret_id, webhook_secret) = store_webhook_secret(&bed).await;
    let verify = bed
        .run(
            "verify",
            &[
                ("CONNECT_QUEUE_URL", queue.as_str()),
                ("LEAF_WEBHOOK_SECRET_ID", secret_id.as_str()),
            ],
        )
        .await;
    let connect = bed.run("connect", &[]).await;
    World {
        bed,
        connect,
        verify,
        queue,
        webhook_secret,
    }
}

impl World {
    /// Sends verify an API event (an alert); the status and the parsed body.
    async fn post(&self, event: Value) -> (u16, Value) {
        api_response(&self.bed.invoke(&self.verify, event).await)
    }

    /// Posts `body` as Leaf would: signed with the webhook secret.
    async fn alert(&self, body: &str) -> (u16, Value) {
        let signature = sign(&self.webhook_secret, body.as_bytes());
        self.post(alert_event(body, Some(&signature))).await
    }

    /// Sends verify a Secrets Manager call about `secret` (name or ARN); verify's answer.
    async fn secret_call(&self, event_name: &str, secret: &str) -> Value {
        let event = secret_event(event_name, secret);
        self.bed.invoke(&self.verify, event).await.expect_ok()
    }

    /// A grower connected through `POST /connections`; the id of the credentials Leaf holds,
    /// which connect recorded on the grower's secret.
    async fn connected_grower(&self) -> (Grower, String) {
        let grower = self.bed.add_grower().await;
        let id = &grower.leaf_user_id;
        let (status, body) =
            api_response(&self.bed.invoke(&self.connect, connect_api_event(id, false)).await);
        assert_eq!(
            (status, body["outcome"].as_str()),
            (201, Some("connected")),
            "{body}"
        );
        let held = self.bed.standin.credential(id).expect("Leaf holds credentials");
        assert_eq!(body["credentialsId"], held.id, "{body}");
        assert_eq!(self.credentials_tag(id).await.as_deref(), Some(held.id.as_str()));
        (grower, held.id)
    }

    /// The `stara-connect:credentials-id` tag of the grower's login secret.
    async fn credentials_tag(&self, id: &str) -> Option<String> {
        let secret = secret_state::describe(&self.bed.secret_id(id)).await;
        secret.tags.get(CREDENTIALS_TAG).cloned()
    }

    /// The messages waiting in the connect queue (received and deleted): `expected` of them, or
    /// whatever arrived when there should be none.
    async fn queued(&self, expected: usize) -> Vec<Message> {
        testbed::queue::queued(&self.queue, expected).await
    }

    /// Hands `messages` to connect as its SQS trigger would; the batch item failures.
    async fn deliver(&self, messages: &[Message]) -> Vec<String> {
        assert!(!messages.is_empty(), "SQS never sends an empty batch");
        batch_failures(&self.bed.invoke(&self.connect, sqs_event_of(messages)).await)
    }

    /// The `outcome` of each "connect finished" line about this grower, in order.
    fn outcomes(&self, id: &str) -> Vec<String> {
        self.connect
            .function
            .log_json()
            .into_iter()
            .filter(|line| line["message"] == "connect finished" && about(line, id))
            .map(|line| line["outcome"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    /// How many EMF lines of verify count `metric`.
    fn metric_lines(&self, metric: &str) -> usize {
        self.verify
            .function
            .log_json()
            .iter()
            .filter(|line| line[metric].is_number())
            .count()
    }

    fn assert_no_leaks(&self) {
        assert!(
            self.bed.secrets().contains(&self.webhook_secret),
            "the webhook secret is one of the bed's secrets"
        );
        self.bed
            .assert_no_leaks(&[&self.connect.function, &self.verify.function]);
    }
}

/// Whether a log line belongs to this grower (its span or its own `leafUserId` field).
fn about(line: &Value, id: &str) -> bool {
    line["leafUserId"] == id
        || line["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|span| span["leafUserId"] == id))
}

/// A queued message: its parsed body, its message group and its deduplication id.
fn parts(message: &Message) -> (Value, String, String) {
    let body = serde_json::from_str(message.body().unwrap_or_default()).expect("a JSON body");
    let attribute = |name: Attr| {
        message
            .attributes()
            .and_then(|a| a.get(&name))
            .cloned()
            .unwrap_or_default()
    };
    (
        body,
        attribute(Attr::MessageGroupId),
        attribute(Attr::MessageDeduplicationId),
    )
}
