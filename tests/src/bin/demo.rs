//! `make demo`: runs the real `connect` binary on this machine, through the Lambda Runtime API,
//! against moto (Secrets Manager) and the Stara/Leaf stand-ins, and shows a grower connected.

use serde_json::{Value, json};
use testbed::bed::{Bed, Grower, api_response, batch_failures, connect_body, sqs_event};
use testbed::{Route, load_event, moto};

#[tokio::main]
async fn main() {
    let bed = Bed::start().await;
    let event = load_event("connect-api.json");
    let body: Value = serde_json::from_str(event["body"].as_str().expect("the sample has a body"))
        .expect("the sample body is JSON");
    let leaf_user_id = body["leafUserId"]
        .as_str()
        .expect("the sample names a leafUserId")
        .to_owned();

    // The grower of the sample event: a Stara account, a Leaf user, and the login in Secrets Manager.
    let grower = Grower {
        leaf_user_id: leaf_user_id.clone(),
        login: "demo-grower".into(),
        password: "demo-password-not-shown".into(),
    };
    bed.standin.add_stara_account(&grower.login, &grower.password);
    bed.standin.add_leaf_user(&grower.leaf_user_id);
    bed.store_login(&grower).await;
    let running = bed.run("connect", &[]).await;

    println!("stara-connect demo: every part runs on 127.0.0.1");
    println!("  Secrets Manager (moto)  {}", moto::moto_endpoint());
    println!("  Stara stand-in          {}", bed.standin.stara_url());
    println!("  Leaf stand-in           {}", bed.standin.leaf_url());
    println!(
        "  connect function        {} (real binary, Lambda Runtime API emulator)",
        testbed::Function::binary_path("connect").display()
    );
    println!("  grower login secret     {}{}", bed.grower_prefix, leaf_user_id);
    println!();

    println!("1. POST /connections with events/connect-api.json");
    let (status, body) = api_response(&bed.invoke(&running, event.clone()).await);
    println!("   → {status} {body}");
    let connected = status == 201 && body["outcome"] == "connected";

    println!("2. the same request again (idempotent: no Stara call, no second POST)");
    let (status, body) = api_response(&bed.invoke(&running, event).await);
    println!("   → {status} {body}");

    let held = bed.standin.credential(&leaf_user_id);
    println!(
        "3. Leaf now holds Stara credentials for the user: {}",
        held.as_ref()
            .map_or("none".into(), |c| format!("id {} status {}", c.id, c.status))
    );
    println!(
        "   upstream calls so far: Stara /autenticacao {}, /token {}, Leaf POST {}",
        bed.standin.count(Route::StaraAuth),
        bed.standin.count(Route::StaraToken),
        bed.standin.count(Route::LeafPostCredentials)
    );

    println!("4. an SQS batch asking to replace them (force: true)");
    let invocation = bed
        .invoke(&running, sqs_event(&[connect_body(&leaf_user_id, true)]))
        .await;
    println!("   → batchItemFailures {}", json!(batch_failures(&invocation)));

    println!("5. what the function logged (JSON, one line per outcome):");
    for line in running
        .function
        .log_json()
        .iter()
        .filter(|l| l["message"] == "connect finished")
    {
        println!("   {line}");
    }
    bed.assert_no_leaks(&[&running.function]);
    println!();
    if connected && held.is_some_and(|c| c.status == "OK") {
        println!(
            "grower {leaf_user_id} is connected; no password or token appeared in any log line or response."
        );
    } else {
        eprintln!("the demo did not connect the grower: see the output above");
        std::process::exit(1);
    }
}
