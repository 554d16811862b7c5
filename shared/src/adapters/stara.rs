//! Stara's telemetry API: steps 1 and 2 of Leaf's tutorial.
//!
//! `POST /autenticacao {login,password}` → `apiKey`, then `POST /token {apiKey}` →
//! `accessToken`, `accessTokenClient`, `refreshToken`. Both calls only issue fresh keys, so
//! repeating them is harmless and they are retried like reads.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::base_url::BaseUrl;
use super::http::{Call, HttpClient, Reply};
use crate::domain::error::{ConnectorError, Service, UpstreamError, UpstreamKind};
use crate::domain::model::{StaraLogin, StaraTokens};
use crate::domain::ports::StaraApi;
use crate::domain::time::Deadline;

pub(crate) struct StaraClient {
    http: HttpClient,
    base_url: BaseUrl,
}

const AUTH: &str = "POST /autenticacao";
const TOKEN: &str = "POST /token";

impl StaraClient {
    pub(crate) fn new(http: HttpClient, base_url: BaseUrl) -> Self {
        Self { http, base_url }
    }

    async fn post(
        &self,
        operation: &'static str,
        segment: &str,
        body: &[u8],
        deadline: &Deadline,
    ) -> Result<Reply, ConnectorError> {
        let call = Call {
            service: Service::Stara,
            operation,
            method: reqwest::Method::POST,
            url: self.base_url.join([segment]),
            bearer: None,
            json_body: Some(body),
        };
        Ok(self.http.send(&call, deadline).await?)
    }

    /// Step 1: the grower's login for an `apiKey`.
    pub(crate) async fn authenticate(
        &self,
        login: &StaraLogin,
        deadline: &Deadline,
    ) -> Result<SecretString, ConnectorError> {
        #[derive(Serialize)]
        struct Body<'a> {
            login: &'a str,
            password: &'a str,
        }
        let body = serde_json::to_vec(&Body {
            login: &login.login,
            password: login.password.expose_secret(),
        })
        .expect("two strings always serialise");
        let reply = self.post(AUTH, "autenticacao", &body, deadline).await?;
        match reply.status {
            200..=299 => {
                let mut fields = json_fields(&reply, AUTH, &["apiKey"])?;
                Ok(fields.remove(0))
            }
            // Stara answers a wrong login or password with a client error: only the grower can fix it.
            status @ (400 | 401 | 403) => Err(ConnectorError::StaraLoginRejected { status }),
            status => Err(unexpected(AUTH, status)),
        }
    }

    /// Step 2: the `apiKey` for the three OAuth tokens.
    pub(crate) async fn tokens(
        &self,
        api_key: SecretString,
        deadline: &Deadline,
    ) -> Result<StaraTokens, ConnectorError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            api_key: &'a str,
        }
        let body = serde_json::to_vec(&Body {
            api_key: api_key.expose_secret(),
        })
        .expect("a string always serialises");
        let reply = self.post(TOKEN, "token", &body, deadline).await?;
        match reply.status {
            200..=299 => {
                let mut fields = json_fields(
                    &reply,
                    TOKEN,
                    &["accessToken", "accessTokenClient", "refreshToken"],
                )?
                .into_iter();
                let mut next = || fields.next().expect("json_fields returns one value per name");
                Ok(StaraTokens {
                    api_key,
                    access_token: next(),
                    access_token_client: next(),
                    refresh_token: next(),
                })
            }
            status => Err(unexpected(TOKEN, status)),
        }
    }
}

#[async_trait]
impl StaraApi for StaraClient {
    async fn issue_tokens(
        &self,
        login: &StaraLogin,
        deadline: &Deadline,
    ) -> Result<StaraTokens, ConnectorError> {
        let api_key = self.authenticate(login, deadline).await?;
        self.tokens(api_key, deadline).await
    }
}

fn unexpected(operation: &'static str, status: u16) -> ConnectorError {
    UpstreamError::unexpected_status(Service::Stara, operation, status).into()
}

/// Reads non-empty string fields from a JSON answer, in the order asked. The error names the
/// missing field; it never quotes the body, which holds keys.
fn json_fields(
    reply: &Reply,
    operation: &'static str,
    names: &[&str],
) -> Result<Vec<SecretString>, ConnectorError> {
    let bad = |detail: String| {
        ConnectorError::from(UpstreamError::new(
            Service::Stara,
            operation,
            UpstreamKind::BadGateway,
            detail,
        ))
    };
    let json: serde_json::Value = serde_json::from_slice(&reply.body)
        .map_err(|_| bad(format!("HTTP {} with a body that is not JSON", reply.status)))?;
    names
        .iter()
        .map(|name| match json.get(name) {
            Some(serde_json::Value::String(v)) if !v.is_empty() => Ok(SecretString::from(v.as_str())),
            _ => Err(bad(format!("the answer has no `{name}`"))),
        })
        .collect()
}
