//! A Leaf user's Stara credentials: `GET`, `POST` and `DELETE .../users/{id}/stara-credentials`,
//! and the provider events Leaf keeps for them (`GET .../stara-credentials/events`).

use std::time::SystemTime;

use serde_json::{Value, json};

use super::leaf_users::{LeafUser, leaf_error};
use super::stara::StaraTokens;
use super::{StandIn, State, string_fields};
use crate::server::{self, HttpResponse, iso_micros, json_response, random_token};

/// What the stand-in currently holds as a user's Stara credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialView {
    pub id: String,
    pub status: String,
}

/// Stara credentials as Leaf stores them.
pub(super) struct Credential {
    id: String,
    status: String,
    created_time: String,
    api_key: String,
    tokens: StaraTokens,
}

impl StandIn {
    /// Status the next credentials created for `user` get (default "OK"). Creates the user if unknown.
    pub fn set_next_status(&self, user: &str, status: &str) {
        self.lock().user_mut(user).next_status = status.to_owned();
    }

    /// Seed existing credentials (random tokens, not issued by Stara). Creates the user if unknown.
    pub fn set_credential(&self, user: &str, status: &str) {
        let mut state = self.lock();
        let api_key = random_token("seeded-apikey");
        let tokens = StaraTokens::random("seeded");
        state
            .secrets
            .extend([api_key.clone()].into_iter().chain(tokens.all()));
        state.user_mut(user).credential = Some(Credential::new(status, api_key, tokens));
    }

    /// Change the status of `user`'s existing credentials.
    ///
    /// Panics if the user has none: that is a mistake in the test.
    pub fn set_status(&self, user: &str, status: &str) {
        let mut state = self.lock();
        let credential = state
            .users
            .get_mut(user)
            .and_then(|user| user.credential.as_mut())
            .unwrap_or_else(|| panic!("stand-in: set_status({user:?}): that user has no Stara credentials"));
        credential.status = status.to_owned();
    }

    /// The credentials Leaf currently holds for `user`, if any.
    pub fn credential(&self, user: &str) -> Option<CredentialView> {
        let state = self.lock();
        let credential = state.users.get(user)?.credential.as_ref()?;
        Some(CredentialView {
            id: credential.id.clone(),
            status: credential.status.clone(),
        })
    }

    /// The events Leaf holds for `user`, oldest first (same JSON as the events endpoint).
    pub fn events(&self, user: &str) -> Vec<Value> {
        self.lock()
            .users
            .get(user)
            .map(|user| user.events.clone())
            .unwrap_or_default()
    }

    /// Append a provider event whose raw body and headers contain a fresh token (also
    /// reported by [`issued_secrets`](Self::issued_secrets), so a leak is detectable).
    /// Creates the user if unknown.
    pub fn add_event(&self, user: &str, status_code: u16) {
        self.add_event_at(user, status_code, SystemTime::now());
    }

    /// Like [`add_event`](Self::add_event), with `createdDate` set to `at`: an event from
    /// before the current credentials were created, say. Appended last, whatever its date.
    pub fn add_event_at(&self, user: &str, status_code: u16, at: SystemTime) {
        let mut state = self.lock();
        let token = random_token("event-token");
        state.secrets.push(token.clone());
        state
            .user_mut(user)
            .events
            .push(provider_event_at(status_code, &token, at));
    }

    /// The `createdTime` of the credentials Leaf holds for `user`, as Leaf writes it.
    pub fn created_time(&self, user: &str) -> Option<String> {
        let state = self.lock();
        let credential = state.users.get(user)?.credential.as_ref()?;
        Some(credential.created_time.clone())
    }

    /// POSTs refused with 409 because the user already had credentials: each one is a POST
    /// the product sent for a user Leaf had already connected.
    pub fn conflicts(&self) -> usize {
        self.lock().conflicts
    }
}

impl Credential {
    fn new(status: &str, api_key: String, tokens: StaraTokens) -> Credential {
        Credential {
            id: uuid::Uuid::new_v4().to_string(),
            status: status.to_owned(),
            created_time: iso_micros(SystemTime::now()),
            api_key,
            tokens,
        }
    }

    /// Leaf's representation, which echoes the tokens back.
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "createdTime": self.created_time,
            "apiKey": self.api_key,
            "accessToken": self.tokens.access_token,
            "accessTokenClient": self.tokens.access_token_client,
            "refreshToken": self.tokens.refresh_token,
        })
    }
}

impl State {
    pub(super) fn get_credentials(&self, id: &str) -> HttpResponse {
        match self.users.get(id) {
            None => leaf_error(404, "Not Found", "User not found"),
            Some(LeafUser { credential: None, .. }) => {
                leaf_error(404, "Not Found", "Stara credentials not found")
            }
            Some(LeafUser {
                credential: Some(credential),
                ..
            }) => json_response(200, &credential.to_json()),
        }
    }

    pub(super) fn post_credentials(&mut self, id: &str, body: &[u8]) -> HttpResponse {
        let Some(user) = self.users.get(id) else {
            return leaf_error(404, "Not Found", "User not found");
        };
        if user.credential.is_some() {
            self.conflicts += 1;
            return leaf_error(409, "Conflict", "User already has Stara credentials");
        }
        let fields = string_fields(
            body,
            ["apiKey", "accessToken", "accessTokenClient", "refreshToken"],
        );
        let Some([api_key, access_token, access_token_client, refresh_token]) = fields else {
            return leaf_error(
                400,
                "Bad Request",
                "apiKey, accessToken, accessTokenClient and refreshToken are required",
            );
        };
        let tokens = StaraTokens {
            access_token,
            access_token_client,
            refresh_token,
        };
        let Some(issued) = self.api_keys.get(&api_key) else {
            return leaf_error(400, "Bad Request", "apiKey was not issued by Stara");
        };
        if !issued.contains(&tokens) {
            return leaf_error(
                400,
                "Bad Request",
                "tokens were not issued by Stara for this apiKey",
            );
        }

        let event = provider_event(200, &tokens.access_token);
        let user = self.user_mut(id);
        let credential = Credential::new(&user.next_status, api_key, tokens);
        let reply = credential.to_json();
        user.credential = Some(credential);
        user.events.push(event);
        json_response(201, &reply)
    }

    pub(super) fn delete_credentials(&mut self, id: &str) -> HttpResponse {
        match self.users.get_mut(id).and_then(|user| user.credential.take()) {
            Some(_) => server::raw_response(204, "application/json", ""),
            None => leaf_error(404, "Not Found", "Stara credentials not found"),
        }
    }

    pub(super) fn leaf_events(&self, id: &str) -> HttpResponse {
        match self.users.get(id) {
            Some(user) => json_response(200, &Value::Array(user.events.clone())),
            None => leaf_error(404, "Not Found", "User not found"),
        }
    }
}

/// A raw provider HTTP log as Leaf stores it; `token` is deliberately in the body and headers.
fn provider_event(status_code: u16, token: &str) -> Value {
    provider_event_at(status_code, token, SystemTime::now())
}

fn provider_event_at(status_code: u16, token: &str, at: SystemTime) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "url": "https://stara.example/token",
        "method": "POST",
        "statusCode": status_code,
        "body": json!({ "accessToken": token, "refreshToken": token }).to_string(),
        "headers": { "Content-Type": "application/json", "Authorization": format!("Bearer {token}") },
        "createdDate": iso_micros(at),
    })
}
