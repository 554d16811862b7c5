//! The stand-in answers like Stara and Leaf: logins, tokens, users, credentials and events.

use hyper::Method;
use serde_json::{Value, json};

use super::{
    USER, USERS_PREFIX, client, credentials_url, id_token, post, post_credentials, seeded, stara_tokens,
};
use crate::standin::routes::{Side, classify};
use crate::standin::{Route, StandIn};

#[tokio::test]
async fn happy_flow_stores_the_tokens_stara_issued() {
    let stand_in = seeded().await;
    let tokens = stara_tokens(&stand_in).await;
    let token = id_token(&stand_in).await;

    let user = client()
        .get(format!("{}{USERS_PREFIX}{USER}", stand_in.leaf_url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get user");
    assert_eq!(user.status(), 200);
    assert_eq!(user.json::<Value>().await.expect("user json")["id"], USER);

    let missing = client()
        .get(credentials_url(&stand_in))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.expect("404 json")["title"],
        "Not Found"
    );

    let created = post_credentials(&stand_in, &token, &tokens).await.expect("post");
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("201 json");
    assert_eq!(created["status"], "OK");
    assert_eq!(created["refreshToken"], tokens["refreshToken"]);
    let created_time = created["createdTime"].as_str().expect("createdTime");
    assert_eq!(created_time.len(), "2024-01-01T00:00:00.000000Z".len());

    let view = stand_in.credential(USER).expect("stored");
    assert_eq!(
        (view.id.as_str(), view.status.as_str()),
        (created["id"].as_str().expect("id"), "OK")
    );

    let fetched: Value = client()
        .get(credentials_url(&stand_in))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        fetched["accessToken"], tokens["accessToken"],
        "Leaf echoes the tokens back"
    );

    let events: Value = client()
        .get(format!("{}/events", credentials_url(&stand_in)))
        .bearer_auth(&token)
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    let event_body = events[0]["body"].as_str().expect("event body");
    assert!(event_body.contains(tokens["accessToken"].as_str().expect("token")));

    let deleted = client()
        .delete(credentials_url(&stand_in))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    assert_eq!(stand_in.credential(USER), None);
    let again = client()
        .delete(credentials_url(&stand_in))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(again.status(), 404);

    let counts = stand_in.counts();
    assert_eq!(counts[&Route::StaraAuth], 1);
    assert_eq!(counts[&Route::LeafDeleteCredentials], 2);
    assert_eq!(counts[&Route::LeafEvents], 1);
    assert!(stand_in.unrouted().is_empty());
    let secrets = stand_in.issued_secrets();
    for secret in [
        "stara-pw",
        "leaf-pw",
        token.as_str(),
        tokens["refreshToken"].as_str().expect("str"),
    ] {
        assert!(
            secrets.iter().any(|known| known == secret),
            "{secret} should be reported"
        );
    }
    let recorded = &stand_in.requests(Route::LeafPostCredentials)[0];
    assert_eq!(
        recorded.header("Authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    assert_eq!(recorded.json(), Some(tokens));
}

#[tokio::test]
async fn rejects_bad_logins_bodies_and_unknown_users() {
    let stand_in = seeded().await;
    let (status, body) = post(
        format!("{}/autenticacao", stand_in.stara_url()),
        json!({ "login": "grower@example.com", "password": "wrong" }),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["message"].as_str()),
        (401, Some("Login ou senha inválidos"))
    );
    let not_json = client()
        .post(format!("{}/autenticacao", stand_in.stara_url()))
        .body("login=x")
        .send()
        .await
        .expect("post");
    assert_eq!(not_json.status(), 400);
    let (status, _) = post(
        format!("{}/token", stand_in.stara_url()),
        json!({ "apiKey": "made-up" }),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post(
        format!("{}/api/authenticate", stand_in.leaf_url()),
        json!({ "username": "owner", "password": "nope", "rememberMe": "true" }),
    )
    .await;
    assert_eq!(status, 401);

    let token = id_token(&stand_in).await;
    let unknown = client()
        .get(format!(
            "{}{USERS_PREFIX}nobody/stara-credentials",
            stand_in.leaf_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(unknown.status(), 404);
    let no_token = client()
        .get(credentials_url(&stand_in))
        .send()
        .await
        .expect("get");
    assert_eq!(no_token.status(), 401);
    assert_eq!(
        no_token.json::<Value>().await.expect("json"),
        json!({ "title": "Unauthorized", "status": 401 })
    );
}

#[tokio::test]
async fn post_conflicts_and_checks_the_tokens() {
    let stand_in = seeded().await;
    let tokens = stara_tokens(&stand_in).await;
    let token = id_token(&stand_in).await;

    let mut forged = tokens.clone();
    forged["accessToken"] = json!("not-from-stara");
    let response = post_credentials(&stand_in, &token, &forged).await.expect("post");
    assert_eq!(response.status(), 400);
    let mut partial = tokens.clone();
    partial
        .as_object_mut()
        .expect("object")
        .remove("accessTokenClient");
    assert_eq!(
        post_credentials(&stand_in, &token, &partial)
            .await
            .expect("post")
            .status(),
        400
    );
    assert_eq!(stand_in.credential(USER), None);

    stand_in.set_next_status(USER, "PENDING");
    let response = post_credentials(&stand_in, &token, &tokens).await.expect("post");
    assert_eq!(response.status(), 201);
    assert_eq!(stand_in.credential(USER).expect("stored").status, "PENDING");
    let response = post_credentials(&stand_in, &token, &tokens).await.expect("post");
    assert_eq!(response.status(), 409);

    stand_in.set_status(USER, "INVALID");
    assert_eq!(stand_in.credential(USER).expect("stored").status, "INVALID");
}

#[tokio::test]
async fn expired_id_tokens_get_401_until_reauthentication() {
    let stand_in = seeded().await;
    let first = id_token(&stand_in).await;
    stand_in.expire_leaf_tokens();
    let response = client()
        .get(credentials_url(&stand_in))
        .bearer_auth(&first)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 401);
    let second = id_token(&stand_in).await;
    let response = client()
        .get(credentials_url(&stand_in))
        .bearer_auth(&second)
        .send()
        .await
        .expect("get");
    assert_eq!(
        response.status(),
        404,
        "authorised again; the user just has no credentials"
    );
}

#[tokio::test]
async fn seeded_credentials_and_events() {
    let stand_in = StandIn::start().await;
    stand_in.set_leaf_owner("owner", "leaf-pw");
    stand_in.set_credential(USER, "OK");
    stand_in.add_event(USER, 401);
    let token = id_token(&stand_in).await;
    let events: Value = client()
        .get(format!("{}/events", credentials_url(&stand_in)))
        .bearer_auth(&token)
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    assert_eq!(events[0]["statusCode"], 401);
    let body = events[0]["body"].as_str().expect("body");
    assert!(
        stand_in
            .issued_secrets()
            .iter()
            .any(|secret| body.contains(secret.as_str()))
    );
    let credential: Value = client()
        .get(credentials_url(&stand_in))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(credential["status"], "OK");
}

#[tokio::test]
async fn events_can_be_dated_before_the_credentials() {
    let stand_in = StandIn::start().await;
    stand_in.set_credential(USER, "OK");
    let created = stand_in.created_time(USER).expect("credentials held");
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    stand_in.add_event_at(USER, 401, hour_ago);
    stand_in.add_event(USER, 200);
    let events = stand_in.events(USER);
    let dates: Vec<&str> = events
        .iter()
        .map(|e| e["createdDate"].as_str().unwrap())
        .collect();
    assert!(dates[0] < created.as_str(), "{dates:?} vs {created}");
    assert!(dates[1] >= created.as_str(), "{dates:?} vs {created}");
    assert_eq!(created.len(), dates[0].len(), "one format for both");
    assert_eq!(stand_in.created_time("nobody"), None);
}

#[test]
fn classifies_paths() {
    let route = |side, method, path| classify(side, &method, path);
    assert_eq!(
        route(
            Side::Leaf,
            Method::GET,
            "/services/usermanagement/api/users/a%20b/stara-credentials/events"
        ),
        Some((Route::LeafEvents, Some("a b".to_owned())))
    );
    assert_eq!(
        route(
            Side::Leaf,
            Method::GET,
            "/services/usermanagement/api/users//stara-credentials"
        ),
        None
    );
    assert_eq!(
        route(
            Side::Leaf,
            Method::PUT,
            "/services/usermanagement/api/users/x/stara-credentials"
        ),
        None
    );
    assert_eq!(route(Side::Stara, Method::POST, "/api/authenticate"), None);
    assert_eq!(
        route(Side::Stara, Method::POST, "/token"),
        Some((Route::StaraToken, None))
    );
}
