//! The stand-in over real HTTP: `api` checks that it answers like Stara and Leaf, `faults`
//! that injected faults are served as described. The helpers below are a minimal client.

mod api;
mod faults;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::standin::StandIn;
use crate::standin::routes::USERS_PREFIX;

const USER: &str = "11111111-2222-3333-4444-555555555555";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

async fn post(url: String, body: Value) -> (StatusCode, Value) {
    let response = client().post(url).json(&body).send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A stand-in with one Stara account, a Leaf owner and one Leaf user.
async fn seeded() -> StandIn {
    let stand_in = StandIn::start().await;
    stand_in.add_stara_account("grower@example.com", "stara-pw");
    stand_in.set_leaf_owner("owner", "leaf-pw");
    stand_in.add_leaf_user(USER);
    stand_in
}

async fn stara_tokens(stand_in: &StandIn) -> Value {
    let (status, auth) = post(
        format!("{}/autenticacao", stand_in.stara_url()),
        json!({ "login": "grower@example.com", "password": "stara-pw" }),
    )
    .await;
    assert_eq!(status, 200);
    let (status, mut tokens) = post(
        format!("{}/token", stand_in.stara_url()),
        json!({ "apiKey": auth["apiKey"] }),
    )
    .await;
    assert_eq!(status, 200);
    tokens["apiKey"] = auth["apiKey"].clone();
    tokens
}

async fn id_token(stand_in: &StandIn) -> String {
    let (status, body) = post(
        format!("{}/api/authenticate", stand_in.leaf_url()),
        json!({ "username": "owner", "password": "leaf-pw", "rememberMe": "true" }),
    )
    .await;
    assert_eq!(status, 200);
    body["id_token"].as_str().expect("id_token").to_owned()
}

fn credentials_url(stand_in: &StandIn) -> String {
    format!("{}{USERS_PREFIX}{USER}/stara-credentials", stand_in.leaf_url())
}

async fn post_credentials(
    stand_in: &StandIn,
    token: &str,
    body: &Value,
) -> reqwest::Result<reqwest::Response> {
    client()
        .post(credentials_url(stand_in))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
}
