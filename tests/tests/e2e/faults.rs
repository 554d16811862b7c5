//! The fault matrix: every upstream step of connect crossed with every way a network or an API
//! can fail, each cell with the outcome it must have. Faults are injected once: a cell says
//! whether one such fault is retried away or ends the request with a specific error.
//! docs/RELIABILITY.md is this table in prose; keep the two in step.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use testbed::aws_proxy::{AwsFault, AwsProxy};
use testbed::bed::{
    Bed, Grower, api_response, batch_failures, connect_api_event, connect_body, logged_for_request, sqs_event,
};
use testbed::{Fault, RetryAfter, Route, moto};

/// What a cell must end with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// The request succeeds: HTTP status and outcome.
    Ok(u16, &'static str),
    /// The request fails: HTTP status and error code.
    Err(u16, &'static str),
}

impl Expect {
    /// Whether an SQS message ending like this goes back to the queue: what a later try can
    /// fix, and a deployment fault (so it reaches the DLQ and its alarm instead of vanishing).
    fn retried_by_sqs(self) -> bool {
        matches!(self, Expect::Err(502..=504, code) if code != "upstream_rejected")
            || self == Expect::Err(500, "configuration_error")
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Hang,
    Reset,
    TooManyRetryAfterSeconds,
    TooManyRetryAfterDate,
    Status(u16),
    MalformedJson,
    MissingFields,
}

impl Kind {
    const ALL: [Kind; 13] = [
        Kind::Hang,
        Kind::Reset,
        Kind::TooManyRetryAfterSeconds,
        Kind::TooManyRetryAfterDate,
        Kind::Status(500),
        Kind::Status(502),
        Kind::Status(503),
        Kind::Status(504),
        Kind::MalformedJson,
        Kind::MissingFields,
        Kind::Status(401),
        Kind::Status(404),
        Kind::Status(429),
    ];

    fn fault(self) -> Fault {
        match self {
            Kind::Hang => Fault::Hang,
            Kind::Reset => Fault::Reset,
            Kind::TooManyRetryAfterSeconds => Fault::StatusWithRetryAfter(429, RetryAfter::Seconds(1)),
            Kind::TooManyRetryAfterDate => Fault::StatusWithRetryAfter(
                429,
                RetryAfter::HttpDate(SystemTime::now() + Duration::from_secs(2)),
            ),
            Kind::Status(code) => Fault::Status(code),
            Kind::MalformedJson => Fault::MalformedJson,
            Kind::MissingFields => Fault::MissingFields,
        }
    }
}

const CONNECTED: Expect = Expect::Ok(201, "connected");
const RECONNECTED: Expect = Expect::Ok(201, "reconnected");
const BAD_GATEWAY: Expect = Expect::Err(502, "upstream_bad_gateway");
const REJECTED: Expect = Expect::Err(502, "upstream_rejected");

/// The expected outcome of one fault, injected once, at one step.
fn expected(step: Route, kind: Kind) -> Expect {
    use Kind::*;
    use Route::*;
    // A step reached only when credentials are replaced succeeds as `reconnected`.
    let success = if step == LeafDeleteCredentials {
        RECONNECTED
    } else {
        CONNECTED
    };
    match (step, kind) {
        // Transient: retried with backoff (or after Retry-After) and recovered.
        (
            _,
            Hang | Reset | TooManyRetryAfterSeconds | TooManyRetryAfterDate | Status(429 | 502 | 503 | 504),
        ) => success,
        // A plain 500 is not retried in-process; an SQS redelivery may try again later.
        (_, Status(500)) => BAD_GATEWAY,
        // Stara: a wrong login is the grower's problem; anything else unexpected is Stara's.
        (StaraAuth, Status(401)) => Expect::Err(422, "stara_login_rejected"),
        (StaraAuth | StaraToken, Status(401 | 404)) => REJECTED,
        (StaraAuth | StaraToken, MalformedJson | MissingFields) => BAD_GATEWAY,
        // Leaf authentication: a refused owner login is a deployment error.
        (LeafAuth, Status(401)) => Expect::Err(500, "configuration_error"),
        (LeafAuth, Status(404)) => REJECTED,
        (LeafAuth, MalformedJson | MissingFields) => BAD_GATEWAY,
        // Leaf calls with the owner's token: a 401 means it expired; renew and repeat once.
        (LeafGetCredentials | LeafUser | LeafPostCredentials | LeafDeleteCredentials, Status(401)) => success,
        // GET 404 means "no credentials"; the user lookup then finds the user.
        (LeafGetCredentials, Status(404)) => CONNECTED,
        (LeafGetCredentials, MalformedJson | MissingFields) => BAD_GATEWAY,
        // The user lookup reads only the status.
        (LeafUser, MalformedJson | MissingFields) => CONNECTED,
        (LeafUser | LeafPostCredentials, Status(404)) => Expect::Err(404, "leaf_user_not_found"),
        // A success whose body cannot be read is no clear answer: GET, then POST again.
        (LeafPostCredentials, MalformedJson | MissingFields) => CONNECTED,
        // DELETE reads only the status. Here the stand-in answers 200 (or 404) *without*
        // deleting, so the POST meets the broken credentials (409): they do not work, so the
        // request fails retryably instead of claiming success or posting a duplicate.
        (LeafDeleteCredentials, MalformedJson | MissingFields | Status(404)) => BAD_GATEWAY,
        (step, kind) => panic!("no expectation for {step:?} × {kind:?}"),
    }
}

const STEPS: [Route; 7] = [
    Route::StaraAuth,
    Route::StaraToken,
    Route::LeafAuth,
    Route::LeafGetCredentials,
    Route::LeafUser,
    Route::LeafPostCredentials,
    Route::LeafDeleteCredentials,
];

/// Runs one cell through the API and, for failures, once more through SQS.
async fn run_cell(step: Route, kind: Kind) -> Result<(), String> {
    let expect = expected(step, kind);
    let bed = Bed::start().await;
    let running = bed.run("connect", &[]).await;
    let grower = bed.add_grower().await;
    if step == Route::LeafDeleteCredentials {
        // DELETE is only reached when broken credentials are replaced.
        bed.standin.set_credential(&grower.leaf_user_id, "INVALID");
    }
    bed.standin.inject(step, kind.fault(), 1);

    let invocation = bed
        .invoke(&running, connect_api_event(&grower.leaf_user_id, false))
        .await;
    let (status, body) = api_response(&invocation);
    let got = match body["error"]["code"].as_str() {
        Some(code) => Expect::Err(status, leak(code)),
        None => Expect::Ok(status, leak(body["outcome"].as_str().unwrap_or("?"))),
    };
    let mut problems = Vec::new();
    if got != expect {
        problems.push(format!("API: expected {expect:?}, got {got:?} ({body})"));
    }
    if bed.standin.pending_faults(step) != 0 {
        problems.push("the fault was never served: the step was not reached".to_owned());
    }
    if matches!(expect, Expect::Ok(..)) {
        if let Some(held) = bed.standin.credential(&grower.leaf_user_id) {
            if held.status != "OK" {
                problems.push(format!("Leaf holds status {}", held.status));
            }
        }
        if bed.standin.conflicts() != 0 {
            problems.push("a POST met existing credentials (409): a duplicate attempt".to_owned());
        }
    } else {
        // The same fault through SQS: a batch item failure exactly when it is worth retrying.
        let other = bed.add_grower().await;
        if step == Route::LeafDeleteCredentials {
            bed.standin.set_credential(&other.leaf_user_id, "INVALID");
        }
        bed.standin.inject(step, kind.fault(), 1);
        let invocation = bed
            .invoke(&running, sqs_event(&[connect_body(&other.leaf_user_id, false)]))
            .await;
        let failed = !batch_failures(&invocation).is_empty();
        if failed != expect.retried_by_sqs() {
            problems.push(format!(
                "SQS: batch item failure {failed}, expected {}",
                expect.retried_by_sqs()
            ));
        }
    }
    bed.assert_no_leaks(&[&running.function]);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{step:?} × {kind:?}: {}", problems.join("; ")))
    }
}

fn leak(text: &str) -> &'static str {
    Box::leak(text.to_owned().into_boxed_str())
}

#[tokio::test]
async fn every_upstream_step_under_every_fault() {
    let cells: Vec<(Route, Kind)> = STEPS
        .iter()
        .flat_map(|&step| Kind::ALL.iter().map(move |&kind| (step, kind)))
        .collect();
    assert_eq!(cells.len(), 91);
    let failures: Vec<String> = futures_util::stream::iter(cells)
        .map(|(step, kind)| run_cell(step, kind))
        .buffer_unordered(6)
        .filter_map(|result| async move { result.err() })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A fault that does not stop: the step keeps failing until the retries or the budget run out.
#[tokio::test]
async fn persistent_faults_end_with_the_right_error() {
    let cases = [
        // RETRY_MAX_ATTEMPTS is 4 in the bed.
        (
            Route::StaraAuth,
            Fault::Status(503),
            Expect::Err(503, "upstream_unavailable"),
            4..=4,
        ),
        (
            Route::StaraToken,
            Fault::StatusWithRetryAfter(429, RetryAfter::Seconds(0)),
            Expect::Err(503, "upstream_unavailable"),
            4..=4,
        ),
        (
            Route::LeafGetCredentials,
            Fault::Status(502),
            Expect::Err(502, "upstream_bad_gateway"),
            4..=4,
        ),
        (
            Route::LeafPostCredentials,
            Fault::Status(504),
            Expect::Err(504, "upstream_timeout"),
            4..=4,
        ),
        (
            Route::LeafUser,
            Fault::Reset,
            Expect::Err(503, "upstream_unavailable"),
            4..=4,
        ),
        // 1.5 s per attempt in a 5 s budget: three whole attempts, maybe a short fourth.
        (
            Route::StaraAuth,
            Fault::Hang,
            Expect::Err(504, "upstream_timeout"),
            3..=4,
        ),
        // A Retry-After beyond RETRY_AFTER_CAP_MS (3 s in the bed) ends the retries at once.
        (
            Route::StaraAuth,
            Fault::StatusWithRetryAfter(429, RetryAfter::Seconds(60)),
            Expect::Err(503, "upstream_unavailable"),
            1..=1,
        ),
        (
            Route::LeafAuth,
            Fault::Status(401),
            Expect::Err(500, "configuration_error"),
            1..=1,
        ),
    ];
    for (step, fault, expect, attempts) in cases {
        let bed = Bed::start().await;
        let running = bed.run("connect", &[]).await;
        let grower = bed.add_grower().await;
        bed.standin.inject(step, fault.clone(), 100);

        let (status, body) = api_response(
            &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
                .await,
        );

        assert_eq!(
            Expect::Err(status, leak(body["error"]["code"].as_str().unwrap_or("?"))),
            expect,
            "{step:?} {fault:?}: {body}"
        );
        assert!(
            attempts.contains(&bed.standin.count(step)),
            "{step:?} {fault:?}: {} attempts",
            bed.standin.count(step)
        );
        bed.assert_no_leaks(&[&running.function]);
    }
}

/// Secrets Manager behind a proxy that can throttle, fail and drop connections (moto cannot).
#[tokio::test]
async fn secrets_manager_faults() {
    const GET: &str = "secretsmanager.GetSecretValue";
    let cases = [
        (AwsFault::Throttle, 1, Expect::Ok(201, "connected")),
        (AwsFault::InternalError, 1, Expect::Ok(201, "connected")),
        (AwsFault::Reset, 1, Expect::Ok(201, "connected")),
        (AwsFault::Throttle, 100, Expect::Err(503, "secrets_unavailable")),
        (
            AwsFault::Unavailable,
            100,
            Expect::Err(503, "secrets_unavailable"),
        ),
        (AwsFault::Reset, 100, Expect::Err(503, "secrets_unavailable")),
    ];
    for (fault, times, expect) in cases {
        let bed = Bed::start().await;
        let proxy = AwsProxy::start(&moto::moto_endpoint()).await;
        let running = bed
            .run("connect", &[("AWS_ENDPOINT_URL", &proxy.endpoint())])
            .await;
        let grower = bed.add_grower().await;
        proxy.inject(GET, fault.clone(), times);

        let invocation = bed
            .invoke(&running, connect_api_event(&grower.leaf_user_id, false))
            .await;
        let (status, body) = api_response(&invocation);

        let got = match body["error"]["code"].as_str() {
            Some(code) => Expect::Err(status, leak(code)),
            None => Expect::Ok(status, leak(body["outcome"].as_str().unwrap_or("?"))),
        };
        assert_eq!(got, expect, "{fault:?} ×{times}: {body}");
        // The Leaf owner's secret and the grower's are read at the same time. Once: one of them
        // fails once and is read again (3 reads). Always: the SDK's three attempts each (6).
        let reads = if times == 1 { 3 } else { 6 };
        assert_eq!(proxy.calls(GET), reads, "{fault:?} ×{times}");
        if let Expect::Err(..) = expect {
            let invocation = bed
                .invoke(&running, sqs_event(&[connect_body(&grower.leaf_user_id, false)]))
                .await;
            assert_eq!(
                batch_failures(&invocation),
                vec!["m0".to_owned()],
                "{fault:?}: retryable through SQS"
            );
        }
        bed.assert_no_leaks(&[&running.function]);
    }
}

#[tokio::test]
async fn secrets_manager_unreachable() {
    let bed = Bed::start().await;
    // A port nothing listens on: every call is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let running = bed
        .run("connect", &[("AWS_ENDPOINT_URL", &format!("http://{closed}"))])
        .await;
    let grower: Grower = bed.add_grower().await;

    let (status, body) = api_response(
        &bed.invoke(&running, connect_api_event(&grower.leaf_user_id, false))
            .await,
    );

    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("secrets_unavailable")),
        "{body}"
    );
    // No secret name, ARN or endpoint URL in the answer: the log line of the request has them.
    // The first read that fails may be the Leaf owner's login or the grower's secret (its
    // lifecycle tags are read beside the Leaf lookup): either is named.
    let message = body["error"]["message"].as_str().unwrap();
    let grower_secret = bed.secret_id(&grower.leaf_user_id);
    assert!(
        !message.contains(&bed.leaf_secret_id)
            && !message.contains(&bed.grower_prefix)
            && !message.contains("http"),
        "{message}"
    );
    let logged = logged_for_request(&running.function, &body);
    assert!(
        logged.iter().any(|l| l["error"]
            .as_str()
            .is_some_and(|e| e.contains(&bed.leaf_secret_id) || e.contains(&grower_secret))),
        "the log names the secret: {logged:?}"
    );
    assert_eq!(bed.standin.count(Route::LeafAuth), 0);
    bed.assert_no_leaks(&[&running.function]);
}
