//! The things the workflows talk about: logins, tokens, what Leaf holds, and a request to
//! connect a grower. Secret values are `SecretString` from the moment they exist.

use secrecy::SecretString;
use serde::Serialize;
use uuid::Uuid;

/// A grower's Stara login, from secret `<prefix><leafUserId>`.
#[derive(Clone, Debug)]
pub(crate) struct StaraLogin {
    pub(crate) login: String,
    pub(crate) password: SecretString,
    /// The secret version it was read from, when the store says.
    pub(crate) version: Option<String>,
}

/// What people did to a grower, as far as the automation must respect it. Kept with the
/// grower's login (tags on its secret, docs/HEALTH.md), so it needs no store of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GrowerState {
    /// An operator disconnected the grower: nothing automatic reconnects them.
    pub(crate) disconnected: bool,
    /// The login version Stara rejected.
    pub(crate) rejected_version: Option<String>,
    /// The login's current version.
    pub(crate) current_version: Option<String>,
    /// The id of the Leaf credentials connect last attached, so a Leaf alert about them finds
    /// the grower.
    pub(crate) credentials_id: Option<String>,
}

impl GrowerState {
    /// Stara rejected the login that is still current: trying it again would only fail again,
    /// and count against the grower's own Stara account.
    pub(crate) fn login_rejected(&self) -> bool {
        self.rejected_version.is_some() && self.rejected_version == self.current_version
    }

    /// Whether an explicit connect has marks to clear.
    pub(crate) fn is_marked(&self) -> bool {
        self.disconnected || self.rejected_version.is_some()
    }
}

/// A change to a grower's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Disconnected by an operator.
    Disconnected,
    /// Stara rejected the login of this secret version.
    LoginRejected { version: String },
    /// Connected on purpose, or with a login that works: no mark holds any more.
    Cleared,
    /// Leaf holds credentials with this id for the grower.
    Attached { credentials_id: String },
}

/// The four values Leaf needs to act for the grower at Stara.
#[derive(Clone, Debug)]
pub(crate) struct StaraTokens {
    pub(crate) api_key: SecretString,
    pub(crate) access_token: SecretString,
    pub(crate) access_token_client: SecretString,
    pub(crate) refresh_token: SecretString,
}

/// What Leaf holds for a user, without the tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LeafCredentials {
    pub(crate) id: String,
    pub(crate) status: String,
    pub(crate) created_time: Option<String>,
}

/// One entry of `.../stara-credentials/events`, without its raw `body` and `headers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CredentialEvent {
    pub(crate) status_code: Option<i64>,
    pub(crate) created_date: Option<String>,
}

/// How a create ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Created {
    /// Our POST stored them (seen in its answer, or by a GET after a lost answer).
    Stored(LeafCredentials),
    /// Leaf already held credentials (409): someone else attached them in the meantime.
    AlreadyPresent(LeafCredentials),
}

/// A request to connect one grower: the body of `POST /connections` and of a message on the
/// connect queue, verify's repairs included. Serialised, it is exactly what the connect
/// request parser reads: `{"leafUserId", "force", "reason"?}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectRequest {
    pub(crate) leaf_user_id: Uuid,
    /// Replace working credentials too.
    pub(crate) force: bool,
    /// Why verify asks for a repair (the Leaf status, `missing`, `event_<code>`; see
    /// docs/HEALTH.md). `None` for a person's or a client's own request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

impl ConnectRequest {
    /// Folds another request for the same grower into this one: `force` if either asks for
    /// it, and a person's own request (no reason) wins over a repair.
    pub(crate) fn merge(&mut self, other: ConnectRequest) {
        self.force |= other.force;
        if other.reason.is_none() {
            self.reason = None;
        }
    }
}

/// A Leaf user id: a UUID in its hyphenated form, any letter case (read as lower case).
pub(crate) fn parse_leaf_user_id(text: &str) -> Option<Uuid> {
    Uuid::try_parse(text).ok().filter(|_| text.len() == 36)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_request_serialises_to_the_documented_body() {
        let id = Uuid::new_v4();
        let repair = ConnectRequest {
            leaf_user_id: id,
            force: true,
            reason: Some("INVALID".into()),
        };
        assert_eq!(
            serde_json::to_value(&repair).unwrap(),
            serde_json::json!({"leafUserId": id.to_string(), "force": true, "reason": "INVALID"})
        );
        let plain = ConnectRequest {
            leaf_user_id: id,
            force: false,
            reason: None,
        };
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            serde_json::json!({"leafUserId": id.to_string(), "force": false})
        );
    }

    #[test]
    fn merging_keeps_force_and_a_persons_own_request() {
        let id = Uuid::new_v4();
        let mut held = ConnectRequest {
            leaf_user_id: id,
            force: false,
            reason: Some("missing".into()),
        };
        held.merge(ConnectRequest {
            leaf_user_id: id,
            force: true,
            reason: Some("INVALID".into()),
        });
        assert_eq!((held.force, held.reason.as_deref()), (true, Some("missing")));
        held.merge(ConnectRequest {
            leaf_user_id: id,
            force: false,
            reason: None,
        });
        assert_eq!((held.force, held.reason), (true, None));
    }

    #[test]
    fn a_login_is_rejected_only_while_its_version_is_current() {
        let state = |rejected: Option<&str>, current: Option<&str>| GrowerState {
            disconnected: false,
            rejected_version: rejected.map(str::to_owned),
            current_version: current.map(str::to_owned),
            credentials_id: None,
        };
        assert!(state(Some("v1"), Some("v1")).login_rejected());
        assert!(
            !state(Some("v1"), Some("v2")).login_rejected(),
            "a new version is tried"
        );
        assert!(!state(None, Some("v1")).login_rejected());
        assert!(!state(None, None).login_rejected());
        assert!(state(Some("v1"), Some("v2")).is_marked() && !state(None, Some("v1")).is_marked());
    }

    #[test]
    fn only_hyphenated_uuids_are_leaf_user_ids() {
        let id = Uuid::new_v4();
        assert_eq!(parse_leaf_user_id(&id.to_string()), Some(id));
        assert_eq!(parse_leaf_user_id(&id.to_string().to_uppercase()), Some(id));
        for other in [
            id.simple().to_string(),
            id.braced().to_string(),
            id.urn().to_string(),
            "x".into(),
        ] {
            assert_eq!(parse_leaf_user_id(&other), None, "{other}");
        }
    }
}
