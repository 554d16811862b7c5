//! The routes the stand-in serves, and which route a request is for.

use hyper::Method;

/// The provider endpoints the stand-in serves; used to count requests and inject faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// Stara `POST /autenticacao`.
    StaraAuth,
    /// Stara `POST /token`.
    StaraToken,
    /// Leaf `POST /api/authenticate`.
    LeafAuth,
    /// Leaf `GET /services/usermanagement/api/users/{id}`.
    LeafUser,
    /// Leaf `GET .../users/{id}/stara-credentials`.
    LeafGetCredentials,
    /// Leaf `POST .../users/{id}/stara-credentials`.
    LeafPostCredentials,
    /// Leaf `DELETE .../users/{id}/stara-credentials`.
    LeafDeleteCredentials,
    /// Leaf `GET .../users/{id}/stara-credentials/events`.
    LeafEvents,
    /// Leaf `POST /services/alerts/api/alerts/webhooks`.
    LeafPostWebhook,
    /// Leaf `GET /services/alerts/api/alerts/webhooks`.
    LeafGetWebhooks,
    /// Leaf `DELETE /services/alerts/api/alerts/webhooks/{id}`.
    LeafDeleteWebhook,
}

impl Route {
    pub const ALL: [Route; 11] = [
        Route::StaraAuth,
        Route::StaraToken,
        Route::LeafAuth,
        Route::LeafUser,
        Route::LeafGetCredentials,
        Route::LeafPostCredentials,
        Route::LeafDeleteCredentials,
        Route::LeafEvents,
        Route::LeafPostWebhook,
        Route::LeafGetWebhooks,
        Route::LeafDeleteWebhook,
    ];

    /// Whether the route is served by the Leaf listener.
    pub fn is_leaf(self) -> bool {
        !matches!(self, Route::StaraAuth | Route::StaraToken)
    }
}

/// Which of the two listeners a request arrived on.
#[derive(Clone, Copy)]
pub(super) enum Side {
    Stara,
    Leaf,
}

pub(super) const USERS_PREFIX: &str = "/services/usermanagement/api/users/";

/// Which route a request is for, and the (decoded) Leaf user id in its path.
pub(super) fn classify(side: Side, method: &Method, path: &str) -> Option<(Route, Option<String>)> {
    match side {
        Side::Stara => match (method, path) {
            (&Method::POST, "/autenticacao") => Some((Route::StaraAuth, None)),
            (&Method::POST, "/token") => Some((Route::StaraToken, None)),
            _ => None,
        },
        Side::Leaf => {
            if method == Method::POST && path == "/api/authenticate" {
                return Some((Route::LeafAuth, None));
            }
            if let Some(webhooks) = super::leaf_webhooks::classify(method, path) {
                return Some(webhooks);
            }
            let segments: Vec<&str> = path.strip_prefix(USERS_PREFIX)?.split('/').collect();
            let (route, id) = match (method, segments.as_slice()) {
                (&Method::GET, [id]) => (Route::LeafUser, id),
                (&Method::GET, [id, "stara-credentials"]) => (Route::LeafGetCredentials, id),
                (&Method::POST, [id, "stara-credentials"]) => (Route::LeafPostCredentials, id),
                (&Method::DELETE, [id, "stara-credentials"]) => (Route::LeafDeleteCredentials, id),
                (&Method::GET, [id, "stara-credentials", "events"]) => (Route::LeafEvents, id),
                _ => return None,
            };
            (!id.is_empty()).then(|| (route, Some(percent_decode(id))))
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}
