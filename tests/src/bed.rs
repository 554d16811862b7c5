//! A whole world for one test: the Stara/Leaf stand-in, secrets in moto under names of its own,
//! and the real function binaries, each behind its own Runtime API emulator.

use futures_util::StreamExt;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use uuid::Uuid;

use crate::function::Function;
use crate::runtime_api::{Invocation, RuntimeApi};
use crate::standin::{Fault, Route, StandIn};
use crate::{load_event, moto};

/// Settings that keep tests quick: short timeouts and backoff, same logic as production.
pub const FAST_HTTP: &[(&str, &str)] = &[
    ("HTTP_TIMEOUT_MS", "1500"),
    ("UPSTREAM_BUDGET_MS", "5000"),
    ("RETRY_MAX_ATTEMPTS", "4"),
    ("RETRY_BASE_DELAY_MS", "20"),
    ("RETRY_MAX_DELAY_MS", "200"),
    ("RETRY_AFTER_CAP_MS", "3000"),
];

/// A grower known to Stara (login), to Leaf (user) and to Secrets Manager (its login secret).
#[derive(Clone, Debug)]
pub struct Grower {
    pub leaf_user_id: String,
    pub login: String,
    pub password: String,
}

pub struct Bed {
    pub standin: StandIn,
    pub leaf_secret_id: String,
    pub grower_prefix: String,
    /// Passwords this bed stored that the stand-in never saw (the Leaf owner's, wrong ones).
    own_secrets: Mutex<Vec<String>>,
    /// Every response body the functions returned, for the leak scan.
    responses: Mutex<Vec<String>>,
    capture_dir: PathBuf,
}

/// A function process with the emulator it polls.
pub struct Running {
    pub runtime: RuntimeApi,
    pub function: Function,
    capture_dir: PathBuf,
}

/// Where every bed leaves its secrets, logs and responses when it ends, so that
/// `leak_scan` can search all logs of the whole suite for all secrets of the whole suite.
pub fn capture_root() -> PathBuf {
    crate::workspace_root().join("target").join("e2e-capture")
}

impl Drop for Running {
    fn drop(&mut self) {
        let file = self
            .capture_dir
            .join(format!("{}-{}.log", self.function.name(), self.function.pid()));
        let _ = std::fs::create_dir_all(&self.capture_dir);
        let _ = std::fs::write(file, self.function.logs().join("\n"));
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::create_dir_all(&self.capture_dir);
        let _ = std::fs::write(self.capture_dir.join("secrets.txt"), self.secrets().join("\n"));
        let responses = self.responses.lock().map(|r| r.join("\n")).unwrap_or_default();
        let _ = std::fs::write(self.capture_dir.join("responses.txt"), responses);
    }
}

impl Bed {
    /// A stand-in with a Leaf owner, and a Leaf owner secret in moto, all under fresh names.
    pub async fn start() -> Bed {
        let standin = StandIn::start().await;
        let run = Uuid::new_v4().simple().to_string();
        let leaf_secret_id = format!("stara-connect-test/{run}/leaf-owner");
        let grower_prefix = format!("stara-connect-test/{run}/growers/");
        let leaf_owner_password = format!("leaf-owner-pw-{}", Uuid::new_v4().simple());
        standin.set_leaf_owner("owner@example.com", &leaf_owner_password);
        moto::put_secret(
            &leaf_secret_id,
            &json!({"username": "owner@example.com", "password": leaf_owner_password}),
        )
        .await;
        let capture_dir = capture_root().join(&run);
        Bed {
            standin,
            leaf_secret_id,
            grower_prefix,
            own_secrets: Mutex::new(vec![leaf_owner_password]),
            responses: Mutex::new(Vec::new()),
            capture_dir,
        }
    }

    /// The environment a function of this bed runs with: moto, the stand-in, fast HTTP settings,
    /// then `extra` (which wins).
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = moto::function_env();
        env.push(("STARA_BASE_URL".into(), self.standin.stara_url()));
        env.push(("LEAF_BASE_URL".into(), self.standin.leaf_url()));
        env.push(("LEAF_SECRET_ID".into(), self.leaf_secret_id.clone()));
        env.push(("STARA_SECRET_PREFIX".into(), self.grower_prefix.clone()));
        for (k, v) in FAST_HTTP.iter().chain(extra) {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
        env
    }

    /// Starts `bin` (a compiled function) against its own emulator.
    pub async fn run(&self, bin: &str, extra_env: &[(&str, &str)]) -> Running {
        let runtime = RuntimeApi::start().await;
        let function = Function::spawn(bin, &runtime, &self.env(extra_env));
        Running {
            runtime,
            function,
            capture_dir: self.capture_dir.clone(),
        }
    }

    /// Starts another process of `bin` polling the same emulator as `running`: two warm
    /// instances of one function, sharing its invocations.
    pub fn run_beside(&self, running: &Running, extra_env: &[(&str, &str)]) -> Function {
        Function::spawn(running.function.name(), &running.runtime, &self.env(extra_env))
    }

    /// Starts `n` processes of `bin` (at least one) polling one emulator, each captured like
    /// [`run`](Self::run)'s: warm instances of one function sharing its invocations, each
    /// invocation served by whichever process is idle.
    pub async fn run_fleet(&self, bin: &str, n: usize, extra_env: &[(&str, &str)]) -> Vec<Running> {
        let first = self.run(bin, extra_env).await;
        let mut fleet = Vec::with_capacity(n.max(1));
        for _ in 1..n {
            fleet.push(Running {
                runtime: first.runtime.clone(),
                function: self.run_beside(&first, extra_env),
                capture_dir: self.capture_dir.clone(),
            });
        }
        fleet.insert(0, first);
        fleet
    }

    /// Sends a connect request for each of `ids` as SQS batches of 10, `in_flight` batches at a
    /// time, and returns the ids whose messages came back as batch item failures.
    pub async fn deliver(&self, running: &Running, ids: &[String], in_flight: usize) -> Vec<String> {
        let batches: Vec<&[String]> = ids.chunks(10).collect();
        futures_util::stream::iter(batches)
            .map(|batch| async move {
                let bodies: Vec<String> = batch.iter().map(|id| connect_body(id, false)).collect();
                let invocation = self.invoke(running, sqs_event(&bodies)).await;
                // Message ids are m<index in the batch>.
                batch_failures(&invocation)
                    .iter()
                    .map(|m| batch[m.trim_start_matches('m').parse::<usize>().expect("m<n>")].clone())
                    .collect::<Vec<String>>()
            })
            .buffer_unordered(in_flight.max(1))
            .flat_map(futures_util::stream::iter)
            .collect()
            .await
    }

    /// Delivers `ids`, then what failed again, as SQS does after each visibility timeout, until
    /// nothing fails. Panics after 10 deliveries.
    pub async fn deliver_until_done(
        &self,
        running: &Running,
        ids: Vec<String>,
        in_flight: usize,
    ) -> Deliveries {
        let mut done = Deliveries::default();
        let mut pending = ids;
        while !pending.is_empty() {
            done.deliveries += 1;
            assert!(
                done.deliveries <= 10,
                "{} messages still failing after 10 deliveries",
                pending.len()
            );
            if done.deliveries > 1 {
                done.redelivered += pending.len();
            }
            pending = self.deliver(running, &pending, in_flight).await;
        }
        done
    }

    /// The load scenario's faults: each of six transient faults on five routes hits a request
    /// with `probability`; at 0.01 about 5 % of connects meet one.
    pub fn inject_transient_faults(&self, probability: f64) {
        for (route, fault) in [
            (Route::StaraAuth, Fault::Status(503)),
            (Route::StaraToken, Fault::Reset),
            (Route::LeafGetCredentials, Fault::Status(502)),
            (Route::LeafUser, Fault::Status(429)),
            (Route::LeafPostCredentials, Fault::Status(503)),
            (Route::LeafPostCredentials, Fault::ProcessThenReset),
        ] {
            self.standin.inject_randomly(route, fault, probability);
        }
    }

    /// A grower with a Stara account, a Leaf user and a login secret; no Leaf credentials yet.
    pub async fn add_grower(&self) -> Grower {
        let grower = self.add_grower_without_secret().await;
        self.store_login(&grower).await;
        grower
    }

    /// A grower known to Stara and Leaf whose login was never stored in Secrets Manager.
    pub async fn add_grower_without_secret(&self) -> Grower {
        let id = Uuid::new_v4().to_string();
        let grower = Grower {
            leaf_user_id: id.clone(),
            login: format!("grower-{}", &id[..8]),
            password: format!("stara-pw-{}", Uuid::new_v4().simple()),
        };
        self.standin.add_stara_account(&grower.login, &grower.password);
        self.standin.add_leaf_user(&grower.leaf_user_id);
        grower
    }

    /// The name of the secret that holds this Leaf user's Stara login.
    pub fn secret_id(&self, leaf_user_id: &str) -> String {
        format!("{}{}", self.grower_prefix, leaf_user_id)
    }

    /// Adds a secret value this bed stored elsewhere (a webhook signing key, say) to the ones
    /// [`assert_no_leaks`](Self::assert_no_leaks) and the suite-wide leak scan look for.
    pub fn remember_secret(&self, secret: &str) {
        self.own_secrets.lock().unwrap().push(secret.to_owned());
    }

    pub async fn store_login(&self, grower: &Grower) {
        self.own_secrets.lock().unwrap().push(grower.password.clone());
        let secret = json!({"login": grower.login, "password": grower.password});
        moto::put_secret(&format!("{}{}", self.grower_prefix, grower.leaf_user_id), &secret).await;
    }

    /// Invokes and records the response for the leak scan.
    pub async fn invoke(&self, running: &Running, event: Value) -> Invocation {
        // What the function does after its answer (connect's credentials-id write) is done
        // before this returns, as it is before Lambda starts the next invocation.
        let invocation = running.runtime.invoke_to_end(event, Duration::from_secs(5)).await;
        let text = match &invocation.outcome {
            Ok(v) | Err(v) => v.to_string(),
        };
        self.responses.lock().unwrap().push(text);
        invocation
    }

    /// Every password and token that exists in this bed: what the stand-in issued or was given,
    /// and every password this bed stored.
    pub fn secrets(&self) -> Vec<String> {
        let mut all = self.standin.issued_secrets();
        all.extend(self.own_secrets.lock().unwrap().iter().cloned());
        all
    }

    /// Fails if any password or token appears in a log line of `functions` or in any response.
    pub fn assert_no_leaks(&self, functions: &[&Function]) {
        let secrets = self.secrets();
        assert!(
            secrets.len() > 1,
            "the bed issued no secrets: the scan would prove nothing"
        );
        for function in functions {
            let leaks = function.find_leaks(&secrets);
            assert!(
                leaks.is_empty(),
                "secrets in the logs of {}: {leaks:?}",
                function.name()
            );
        }
        for response in self.responses.lock().unwrap().iter() {
            for secret in &secrets {
                assert!(
                    !response.contains(secret.as_str()),
                    "a secret in a response: {response}"
                );
            }
        }
    }
}

/// How many times messages were delivered before none failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deliveries {
    pub deliveries: usize,
    /// Messages delivered again after a batch item failure.
    pub redelivered: usize,
}

/// `events/connect-api.json` with another body.
pub fn api_event(body: &str) -> Value {
    let mut event = load_event("connect-api.json");
    event["body"] = json!(body);
    event
}

/// `POST /connections` for this user.
pub fn connect_api_event(leaf_user_id: &str, force: bool) -> Value {
    api_event(&json!({"leafUserId": leaf_user_id, "force": force}).to_string())
}

/// An API event for `DELETE /connections/{leafUserId}`, built from the connect sample.
pub fn disconnect_api_event(leaf_user_id: &str) -> Value {
    let mut event = load_event("connect-api.json");
    event["routeKey"] = json!("DELETE /connections/{leafUserId}");
    event["rawPath"] = json!(format!("/connections/{leaf_user_id}"));
    event["requestContext"]["routeKey"] = event["routeKey"].clone();
    event["requestContext"]["http"]["method"] = json!("DELETE");
    event["requestContext"]["http"]["path"] = event["rawPath"].clone();
    event["pathParameters"] = json!({"leafUserId": leaf_user_id});
    event.as_object_mut().expect("an object").remove("body");
    event
}

/// `GET /connections/{leafUserId}` (verify) from `events/verify-api.json`.
pub fn verify_api_event(leaf_user_id: &str) -> Value {
    let mut event = load_event("verify-api.json");
    event["rawPath"] = json!(format!("/connections/{leaf_user_id}"));
    event["requestContext"]["http"]["path"] = event["rawPath"].clone();
    event["pathParameters"] = json!({"leafUserId": leaf_user_id});
    event
}

/// `events/connect-sqs.json` with one record per body, message ids `m0`, `m1`, ...
pub fn sqs_event(bodies: &[String]) -> Value {
    let sample = load_event("connect-sqs.json");
    let template = sample["Records"][0].clone();
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut record = template.clone();
            record["messageId"] = json!(format!("m{i}"));
            record["body"] = json!(body);
            record
        })
        .collect();
    json!({"Records": records})
}

/// The body of a connect request message.
pub fn connect_body(leaf_user_id: &str, force: bool) -> String {
    json!({"leafUserId": leaf_user_id, "force": force}).to_string()
}

/// The status code and parsed JSON body of an API Gateway 2.0 response.
/// The log lines `function` wrote while serving the invocation whose error body carries
/// `body["requestId"]` (the runtime's span holds the same request id).
pub fn logged_for_request(function: &crate::function::Function, body: &Value) -> Vec<Value> {
    let request_id = body["requestId"]
        .as_str()
        .expect("an error body carries the requestId");
    function
        .log_json()
        .into_iter()
        .filter(|line| {
            line["spans"]
                .as_array()
                .is_some_and(|spans| spans.iter().any(|span| span["requestId"] == request_id))
        })
        .collect()
}

pub fn api_response(invocation: &Invocation) -> (u16, Value) {
    let response = invocation
        .outcome
        .as_ref()
        .unwrap_or_else(|e| panic!("the function failed: {e}"));
    let status = response["statusCode"].as_u64().expect("statusCode") as u16;
    let body = match response.get("body").and_then(Value::as_str) {
        Some(text) => serde_json::from_str(text).unwrap_or_else(|_| panic!("body is not JSON: {text}")),
        None => Value::Null,
    };
    (status, body)
}

/// The message ids reported in `batchItemFailures`, sorted.
pub fn batch_failures(invocation: &Invocation) -> Vec<String> {
    let response = invocation
        .outcome
        .as_ref()
        .unwrap_or_else(|e| panic!("the function failed: {e}"));
    let mut ids: Vec<String> = response["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures is an array")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().expect("itemIdentifier").to_owned())
        .collect();
    ids.sort();
    ids
}
