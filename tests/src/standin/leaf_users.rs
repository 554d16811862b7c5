//! Leaf's API owner login (`POST /api/authenticate` → id_token) and its users
//! (`GET /services/usermanagement/api/users/{id}`).

use hyper::header::{AUTHORIZATION, HeaderMap};
use serde_json::{Value, json};

use super::leaf_credentials::Credential;
use super::{StandIn, State, string_fields};
use crate::server::{HttpResponse, json_response, random_token};

/// A Leaf user, with the Stara credentials and provider events Leaf holds for it.
pub(super) struct LeafUser {
    email: String,
    name: String,
    pub(super) next_status: String,
    pub(super) credential: Option<Credential>,
    pub(super) events: Vec<Value>,
}

impl StandIn {
    /// The Leaf API owner account `/api/authenticate` accepts (replaces any previous one).
    pub fn set_leaf_owner(&self, username: &str, password: &str) {
        let mut state = self.lock();
        state.leaf_owner = Some((username.to_owned(), password.to_owned()));
        state.secrets.push(password.to_owned());
    }

    /// A Leaf user without Stara credentials (no-op if it exists).
    pub fn add_leaf_user(&self, id: &str) {
        self.lock().user_mut(id);
    }

    /// Invalidate every id_token issued so far: Leaf answers 401 until the product re-authenticates.
    pub fn expire_leaf_tokens(&self) {
        self.lock().valid_id_tokens.clear();
    }
}

impl State {
    pub(super) fn user_mut(&mut self, id: &str) -> &mut LeafUser {
        self.users.entry(id.to_owned()).or_insert_with(|| LeafUser {
            email: format!("{id}@growers.example"),
            name: format!("Grower {id}"),
            next_status: "OK".to_owned(),
            credential: None,
            events: Vec::new(),
        })
    }

    pub(super) fn leaf_auth(&mut self, body: &[u8]) -> HttpResponse {
        let Some([username, password]) = string_fields(body, ["username", "password"]) else {
            return leaf_error(400, "Bad Request", "username and password are required");
        };
        if self.leaf_owner != Some((username, password)) {
            return leaf_error(401, "Unauthorized", "Bad credentials");
        }
        let id_token = random_token("leaf-id-token");
        self.valid_id_tokens.insert(id_token.clone());
        self.secrets.push(id_token.clone());
        json_response(200, &json!({ "id_token": id_token }))
    }

    pub(super) fn authorized(&self, headers: &HeaderMap) -> bool {
        headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|token| self.valid_id_tokens.contains(token))
    }

    pub(super) fn leaf_user(&self, id: &str) -> HttpResponse {
        match self.users.get(id) {
            Some(user) => json_response(200, &json!({ "id": id, "email": user.email, "name": user.name })),
            None => leaf_error(404, "Not Found", "User not found"),
        }
    }
}

/// A Leaf error body: `{"title","status","detail"}`.
pub(super) fn leaf_error(status: u16, title: &str, detail: &str) -> HttpResponse {
    json_response(
        status,
        &json!({ "title": title, "status": status, "detail": detail }),
    )
}
