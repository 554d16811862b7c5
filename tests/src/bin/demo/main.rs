//! `make demo`: why stara-connect exists, end to end, on the real `connect` and `verify`
//! binaries (each behind a Lambda Runtime API emulator), moto (Secrets Manager and the connect
//! FIFO queue) and the Stara/Leaf stand-in, all on 127.0.0.1.
//!
//! Each step says in one sentence what it shows, shows it, and asserts it: the program exits
//! non-zero when a step does not show what it claims. The functions' logs are captured, not
//! printed; step 5 searches them, and every response, for every password and token.

mod deployment;
mod fleet;
mod sweeps;
mod table;

use std::time::Instant;

use serde_json::Value;
use testbed::bed::Grower;
use testbed::{Function, load_event, moto};

use deployment::Deployment;
use sweeps::{step_four, step_three};

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        eprintln!("make demo: the step above did not show what it claims");
    }));
    let d = Deployment::start().await;
    introduce(&d);
    let first = step_one(&d).await;
    step_two(&d, &first).await;
    let fleet = step_three(&d, first).await;
    step_four(&d, &fleet[0]).await;
    step_five(&d);
    println!();
    println!("The story took {:.1} s.", started.elapsed().as_secs_f64());
}

fn introduce(d: &Deployment) {
    println!("stara-connect demo: the real connect and verify functions, every part on 127.0.0.1");
    let binaries = Function::binary_path("connect");
    let binaries = binaries.parent().expect("a binary is in a directory");
    let root = testbed::workspace_root();
    let binaries = binaries.strip_prefix(&root).unwrap_or(binaries).display();
    let rows = [
        ("Secrets Manager, SQS (moto)", moto::moto_endpoint()),
        ("Stara stand-in", d.bed.standin.stara_url()),
        ("Leaf stand-in", d.bed.standin.leaf_url()),
        (
            "connect, verify",
            format!("{binaries}/connect, {binaries}/verify (the real binaries)"),
        ),
        ("connect queue (FIFO)", d.queue.clone()),
    ];
    for (what, value) in rows {
        println!("  {what:<28} {value}");
    }
    println!("  (each function polls its own Lambda Runtime API emulator; their logs are captured)");
    println!();
}

/// Step 1: the sample API event connects its grower; verify reports the connection healthy.
async fn step_one(d: &Deployment) -> Grower {
    println!("1. A grower is connected through the API, and verify reads the connection's health.");
    let event = load_event("connect-api.json");
    let body: Value = serde_json::from_str(event["body"].as_str().expect("the sample has a body"))
        .expect("the sample body is JSON");
    let id = body["leafUserId"]
        .as_str()
        .expect("the sample names a leafUserId")
        .to_owned();
    let grower = Grower {
        leaf_user_id: id.clone(),
        login: "demo-grower".into(),
        password: format!("demo-pw-{}", uuid::Uuid::new_v4().simple()),
    };
    d.bed.standin.add_stara_account(&grower.login, &grower.password);
    d.bed.standin.add_leaf_user(&id);
    d.bed.store_login(&grower).await;

    let (status, body) = d.post(event).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (201, Some("connected")),
        "{body}"
    );
    println!(
        "   POST /connections (events/connect-api.json) → {status} {}: Leaf holds Stara credentials, \
         status {}",
        body["outcome"].as_str().unwrap_or_default(),
        body["leafStatus"].as_str().unwrap_or_default()
    );
    let (status, body) = d.health(&id).await;
    assert_eq!(
        (status, body["health"].as_str()),
        (200, Some("healthy")),
        "{body}"
    );
    println!(
        "   GET /connections/{id} → {status} {} (Leaf status {})",
        body["health"].as_str().unwrap_or_default(),
        body["leafStatus"].as_str().unwrap_or_default()
    );
    println!();
    grower
}

/// Step 2: Leaf finds the credentials broken and says so; the alert repairs them at once.
async fn step_two(d: &Deployment, grower: &Grower) {
    println!("2. Leaf marks the credentials invalid, its signed alert arrives, and the grower is repaired.");
    let id = &grower.leaf_user_id;
    let (_, before) = d.health(id).await;
    let credentials = before["credentialsId"]
        .as_str()
        .expect("connected credentials have an id")
        .to_owned();
    d.bed.standin.set_status(id, "INVALID");
    println!(
        "   Leaf: the credentials {credentials} are INVALID → GET says {}",
        d.health_of(id).await
    );
    let alert = testbed::alerts::alert_body("credentialsUnauthenticated", &credentials);
    let (status, body) = d.alert(&alert).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (202, Some("repair_queued")),
        "{body}"
    );
    println!("   POST /leaf/alerts (credentialsUnauthenticated, signed) → {status} repair_queued");
    let queued = d.queued(1).await;
    let (_, failures) = d.deliver(&queued).await;
    assert!(failures.is_empty(), "{failures:?}");
    let outcome = d.repair_outcome(id);
    assert_eq!(outcome.as_deref(), Some("reconnected"));
    let health = d.health_of(id).await;
    assert_eq!(health, "healthy");
    println!("   connect took the queued repair → reconnected; GET /connections/{id} → {health}");
    println!();
}

/// Step 5: the bed's leak check over every log line and response of the demo.
fn step_five(d: &Deployment) {
    println!("5. No password or token appeared in any log line or response.");
    let checked = d.check_leaks();
    println!(
        "   {} passwords and tokens (every one the demo stored or the stand-ins issued) searched for in {} \
         log lines",
        checked.secrets, checked.log_lines
    );
    println!(
        "   of connect and verify and in {} responses: none found, and no response names an ARN, an account \
         id or a URL.",
        checked.responses
    );
}
