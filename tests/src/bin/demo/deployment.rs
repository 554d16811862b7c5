//! The deployment the demo drives: the real `connect` and `verify` binaries, each behind its own
//! Lambda Runtime API emulator, the connect FIFO queue between them (moto), Secrets Manager
//! (moto) and the Stara/Leaf stand-in. Its methods are the calls a person, the schedule or the
//! queue's trigger would make; every response is kept for the leak check at the end.

use std::sync::Mutex;

use aws_sdk_sqs::types::Message;
use serde_json::Value;
use testbed::bed::{
    Bed, Running, api_response, batch_failures, connect_api_event, disconnect_api_event, verify_api_event,
};
use testbed::queue::sqs_event_of;
use testbed::{Invocation, Route, load_event, moto};

/// What the leak check looked at.
pub struct LeakCheck {
    pub secrets: usize,
    pub log_lines: usize,
    pub responses: usize,
}

pub struct Deployment {
    pub bed: Bed,
    pub connect: Running,
    pub verify: Running,
    pub queue: String,
    /// The key the demo's "Leaf" signs alerts with (stored for verify in moto).
    pub webhook_secret: String,
    /// Every response body the functions returned (also kept by the bed for its own check).
    responses: Mutex<Vec<String>>,
}

impl Deployment {
    pub async fn start() -> Deployment {
        let bed = Bed::start().await;
        let name = format!("stara-connect-demo-{}.fifo", uuid::Uuid::new_v4().simple());
        let queue = moto::create_fifo_queue(&name).await;
        let (webhook_secret_id, webhook_secret) = testbed::alerts::store_webhook_secret(&bed).await;
        let connect = bed.run("connect", &[]).await;
        let env = [
            ("CONNECT_QUEUE_URL", queue.as_str()),
            ("LEAF_WEBHOOK_SECRET_ID", webhook_secret_id.as_str()),
        ];
        let verify = bed.run("verify", &env).await;
        Deployment {
            bed,
            connect,
            verify,
            queue,
            webhook_secret,
            responses: Mutex::new(Vec::new()),
        }
    }

    async fn invoke(&self, running: &Running, event: Value) -> Invocation {
        let invocation = self.bed.invoke(running, event).await;
        let text = match &invocation.outcome {
            Ok(v) | Err(v) => v.to_string(),
        };
        self.responses.lock().unwrap().push(text);
        invocation
    }

    /// `POST /connections` with this API event (connect).
    pub async fn post(&self, event: Value) -> (u16, Value) {
        api_response(&self.invoke(&self.connect, event).await)
    }

    /// `POST /connections` for this grower (connect).
    pub async fn connect_now(&self, id: &str) -> (u16, Value) {
        self.post(connect_api_event(id, false)).await
    }

    /// `DELETE /connections/{id}` (connect).
    pub async fn disconnect(&self, id: &str) -> (u16, Value) {
        api_response(&self.invoke(&self.connect, disconnect_api_event(id)).await)
    }

    /// `POST /leaf/alerts` (verify): Leaf's alert, signed with the webhook secret.
    pub async fn alert(&self, body: &str) -> (u16, Value) {
        let signature = testbed::alerts::sign(&self.webhook_secret, body.as_bytes());
        let event = testbed::alerts::alert_event(body, Some(&signature));
        api_response(&self.invoke(&self.verify, event).await)
    }

    /// `GET /connections/{id}` (verify): the status and the body.
    pub async fn health(&self, id: &str) -> (u16, Value) {
        api_response(&self.invoke(&self.verify, verify_api_event(id)).await)
    }

    /// `GET /connections/{id}`, which must answer 200: the `health` it reports.
    pub async fn health_of(&self, id: &str) -> String {
        let (status, body) = self.health(id).await;
        assert_eq!(status, 200, "GET /connections/{id}: {body}");
        body["health"].as_str().unwrap_or("?").to_owned()
    }

    /// One scheduled verify run (an EventBridge rule event): its summary.
    pub async fn sweep(&self) -> Value {
        let event = load_event("verify-schedule-rule.json");
        self.invoke(&self.verify, event).await.expect_ok()
    }

    /// The repairs waiting in the connect queue, received and deleted: `expected` of them, or
    /// whatever arrived in half a second when there should be none.
    pub async fn queued(&self, expected: usize) -> Vec<Message> {
        testbed::queue::queued(&self.queue, expected).await
    }

    /// Hands `messages` to connect as the queue's trigger would: batches of up to 10 records
    /// with their own ids, bodies and FIFO attributes. Returns the batches sent and the ids of
    /// the messages reported as batch item failures.
    pub async fn deliver(&self, messages: &[Message]) -> (usize, Vec<String>) {
        let mut failures = Vec::new();
        let batches = messages.chunks(10);
        let count = batches.len();
        for batch in batches {
            failures.extend(batch_failures(
                &self.invoke(&self.connect, sqs_event_of(batch)).await,
            ));
        }
        (count, failures)
    }

    /// What connect did with the last SQS message about this grower: the `outcome` of its
    /// "connect finished" line, or the `code` of its "connect failed" line.
    pub fn repair_outcome(&self, id: &str) -> Option<String> {
        self.connect
            .function
            .log_json()
            .into_iter()
            .rev()
            .filter(|line| line["trigger"] == "sqs" && about(line, id))
            .find_map(|line| match line["message"].as_str() {
                Some("connect finished") => line["outcome"].as_str().map(str::to_owned),
                Some("connect failed") => line["code"].as_str().map(str::to_owned),
                _ => None,
            })
    }

    /// How many times Stara was asked to log in with this login.
    pub fn stara_logins(&self, login: &str) -> usize {
        self.bed
            .standin
            .requests(Route::StaraAuth)
            .iter()
            .filter(|request| request.json().is_some_and(|body| body["login"] == login))
            .count()
    }

    /// The bed's leak check over both functions' logs and every response (it panics on a hit),
    /// then every response against the suite's disclosure rule (no ARN, account id or URL).
    pub fn check_leaks(&self) -> LeakCheck {
        self.bed
            .assert_no_leaks(&[&self.connect.function, &self.verify.function]);
        let responses = self.responses.lock().unwrap();
        for response in responses.iter() {
            if let Some(what) = testbed::leaks::disclosure(response) {
                panic!("{what} in a response: {response}");
            }
        }
        LeakCheck {
            secrets: self.bed.secrets().len(),
            log_lines: self.connect.function.logs().len() + self.verify.function.logs().len(),
            responses: responses.len(),
        }
    }
}

/// Whether a log line is about this grower (its span, or its own `leafUserId` field).
fn about(line: &Value, id: &str) -> bool {
    line["leafUserId"] == id
        || line["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|span| span["leafUserId"] == id))
}

/// The body of a repair message: `leafUserId` and `reason`.
pub fn repair_of(message: &Message) -> (String, String) {
    let body: Value = serde_json::from_str(message.body().unwrap_or_default()).unwrap_or_default();
    let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
    (field("leafUserId"), field("reason"))
}
