//! Stara: `POST /autenticacao` (login and password → apiKey) and `POST /token` (apiKey → tokens).

use serde_json::json;

use super::{StandIn, State, string_fields};
use crate::server::{HttpResponse, json_response, random_token};

/// The tokens Stara's `/token` issues for an apiKey (or seeded ones).
#[derive(Clone, PartialEq, Eq)]
pub(super) struct StaraTokens {
    pub(super) access_token: String,
    pub(super) access_token_client: String,
    pub(super) refresh_token: String,
}

impl StandIn {
    /// A Stara account `/autenticacao` accepts.
    pub fn add_stara_account(&self, login: &str, password: &str) {
        let mut state = self.lock();
        state.stara_accounts.insert(login.to_owned(), password.to_owned());
        state.secrets.push(password.to_owned());
    }
}

impl StaraTokens {
    pub(super) fn random(prefix: &str) -> StaraTokens {
        StaraTokens {
            access_token: random_token(&format!("{prefix}-access")),
            access_token_client: random_token(&format!("{prefix}-access-client")),
            refresh_token: random_token(&format!("{prefix}-refresh")),
        }
    }

    pub(super) fn all(&self) -> [String; 3] {
        [
            self.access_token.clone(),
            self.access_token_client.clone(),
            self.refresh_token.clone(),
        ]
    }
}

impl State {
    pub(super) fn stara_auth(&mut self, body: &[u8]) -> HttpResponse {
        let Some([login, password]) = string_fields(body, ["login", "password"]) else {
            return stara_error(400, "Requisição inválida");
        };
        if self.stara_accounts.get(&login) != Some(&password) {
            return stara_error(401, "Login ou senha inválidos");
        }
        let api_key = random_token("stara-apikey");
        self.api_keys.insert(api_key.clone(), Vec::new());
        self.secrets.push(api_key.clone());
        json_response(200, &json!({ "apiKey": api_key }))
    }

    pub(super) fn stara_token(&mut self, body: &[u8]) -> HttpResponse {
        let Some([api_key]) = string_fields(body, ["apiKey"]) else {
            return stara_error(400, "Requisição inválida");
        };
        let Some(issued) = self.api_keys.get_mut(&api_key) else {
            return stara_error(401, "apiKey inválida");
        };
        let tokens = StaraTokens::random("stara");
        issued.push(tokens.clone());
        self.secrets.extend(tokens.all());
        json_response(
            200,
            &json!({
                "accessToken": tokens.access_token,
                "accessTokenClient": tokens.access_token_client,
                "refreshToken": tokens.refresh_token,
            }),
        )
    }
}

fn stara_error(status: u16, message: &str) -> HttpResponse {
    json_response(status, &json!({ "message": message }))
}
