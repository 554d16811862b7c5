//! What Leaf's credential statuses and events mean for us. One place, so connect and verify
//! agree; docs/HEALTH.md says the same in prose and must change with this file.

use serde::Serialize;

use super::model::{CredentialEvent, LeafCredentials};

/// The status Leaf gives credentials that work.
pub(crate) const LEAF_STATUS_OK: &str = "OK";

/// How a grower's connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Health {
    /// Leaf holds working credentials.
    Healthy,
    /// Leaf holds credentials that do not work: they must be replaced.
    Unhealthy,
    /// Leaf holds no credentials for this (existing) user: they must be attached.
    Missing,
    /// Leaf is still checking the credentials, or says something we do not know: wait.
    Pending,
    /// An operator disconnected the grower: left alone until an explicit connect.
    Disconnected,
    /// Stara rejected the grower's current login: left alone until the login changes.
    LoginRejected,
}

impl Health {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Missing => "missing",
            Health::Pending => "pending",
            Health::Disconnected => "disconnected",
            Health::LoginRejected => "login_rejected",
        }
    }
}

/// Every Leaf status we know, and what it means. Matched exactly as Leaf writes them (upper
/// case); a status not in this table is `Pending`, never `Healthy`.
pub(crate) const LEAF_STATUSES: &[(&str, Health)] = &[
    (LEAF_STATUS_OK, Health::Healthy),
    ("PROCESSING", Health::Pending),
    ("PENDING", Health::Pending),
    ("INVALID", Health::Unhealthy),
    ("UNAUTHORIZED", Health::Unhealthy),
    ("EXPIRED", Health::Unhealthy),
    ("ERROR", Health::Unhealthy),
    ("DISABLED", Health::Unhealthy),
];

/// Status codes of a provider event that mean Stara refused the tokens Leaf holds. When the
/// newest event has one, the credentials are broken even if Leaf still says `OK`.
pub(crate) const REJECTED_EVENT_CODES: &[i64] = &[401, 403];

/// What one Leaf status means, by [`LEAF_STATUSES`].
pub(crate) fn status_health(leaf_status: &str) -> Health {
    LEAF_STATUSES
        .iter()
        .find(|(known, _)| *known == leaf_status)
        .map_or(Health::Pending, |(_, health)| *health)
}

/// Whether credentials with this Leaf status are working. Anything but `OK` is not.
pub(crate) fn is_working(leaf_status: &str) -> bool {
    status_health(leaf_status) == Health::Healthy
}

/// Whether the status alone settles the verdict; only `OK` needs a look at the events too.
pub(crate) fn status_is_decisive(leaf_status: &str) -> bool {
    !is_working(leaf_status)
}

/// The verdict on one connection, with what connect must be told to repair it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Assessment {
    pub(crate) health: Health,
    /// Why it needs repair: the Leaf status, `missing`, or `event_<code>`. `None` when it does not.
    pub(crate) reason: Option<String>,
    /// Whether the repair must replace credentials connect would otherwise keep (status `OK`).
    pub(crate) force: bool,
}

/// Judges a connection from what Leaf holds (`None`: no credentials) and its newest event.
pub(crate) fn assess(
    credentials: Option<&LeafCredentials>,
    newest_event: Option<&CredentialEvent>,
) -> Assessment {
    let Some(credentials) = credentials else {
        return Assessment {
            health: Health::Missing,
            reason: Some("missing".into()),
            force: false,
        };
    };
    match status_health(&credentials.status) {
        Health::Healthy => match newest_event
            .and_then(|e| e.status_code)
            .filter(|code| REJECTED_EVENT_CODES.contains(code))
        {
            // Leaf has not noticed yet; connect keeps `OK` credentials unless forced.
            Some(code) => Assessment {
                health: Health::Unhealthy,
                reason: Some(format!("event_{code}")),
                force: true,
            },
            None => Assessment {
                health: Health::Healthy,
                reason: None,
                force: false,
            },
        },
        // connect replaces credentials that are not `OK` by itself: no force needed.
        Health::Unhealthy => Assessment {
            health: Health::Unhealthy,
            reason: Some(credentials.status.clone()),
            force: false,
        },
        other => Assessment {
            health: other,
            reason: None,
            force: false,
        },
    }
}

/// Whether ISO 8601 time `a` is before `b`, to the second (Leaf writes some times with
/// milliseconds and some without).
fn earlier(a: &str, b: &str) -> bool {
    a.get(..19).unwrap_or(a) < b.get(..19).unwrap_or(b)
}

/// The newest event about the credentials Leaf holds now: the greatest `createdDate` (ISO
/// 8601, compared as text), the later one in the list on a tie or when dates are missing (Leaf
/// lists them oldest first). Events dated before the credentials' `createdTime` were about
/// credentials since replaced, and do not count.
pub(crate) fn newest_event<'a>(
    events: &'a [CredentialEvent],
    credentials_created: Option<&str>,
) -> Option<&'a CredentialEvent> {
    let current = |e: &&CredentialEvent| match (e.created_date.as_deref(), credentials_created) {
        (Some(event), Some(created)) => !earlier(event, created),
        _ => true,
    };
    events.iter().filter(current).reduce(|newest, e| {
        if e.created_date >= newest.created_date {
            e
        } else {
            newest
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(status: &str) -> LeafCredentials {
        LeafCredentials {
            id: "c".into(),
            status: status.into(),
            created_time: None,
        }
    }

    fn event(code: i64, date: &str) -> CredentialEvent {
        CredentialEvent {
            status_code: Some(code),
            created_date: Some(date.into()),
        }
    }

    #[test]
    fn the_status_table_decides() {
        assert_eq!(status_health("OK"), Health::Healthy);
        for s in ["INVALID", "UNAUTHORIZED", "EXPIRED", "ERROR", "DISABLED"] {
            assert_eq!(status_health(s), Health::Unhealthy, "{s}");
        }
        for s in ["PROCESSING", "PENDING"] {
            assert_eq!(status_health(s), Health::Pending, "{s}");
        }
    }

    #[test]
    fn an_unknown_status_is_pending_never_healthy() {
        for s in ["", "ok", "Ok", " OK", "ACTIVE", "SOMETHING_NEW"] {
            assert_eq!(status_health(s), Health::Pending, "{s:?}");
            assert!(!is_working(s), "{s:?}");
        }
    }

    #[test]
    fn every_status_appears_once() {
        let mut names: Vec<&str> = LEAF_STATUSES.iter().map(|(s, _)| *s).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), LEAF_STATUSES.len());
    }

    #[test]
    fn missing_and_failed_statuses_need_a_plain_repair() {
        let missing = assess(None, None);
        assert_eq!(
            (missing.health, missing.reason.as_deref(), missing.force),
            (Health::Missing, Some("missing"), false)
        );
        let invalid = assess(Some(&held("INVALID")), Some(&event(200, "2026-01-01T00:00:00Z")));
        assert_eq!(
            (invalid.health, invalid.reason.as_deref(), invalid.force),
            (Health::Unhealthy, Some("INVALID"), false)
        );
    }

    #[test]
    fn ok_with_a_rejected_newest_event_is_unhealthy_and_forced() {
        for code in [401, 403] {
            let a = assess(Some(&held("OK")), Some(&event(code, "2026-01-01T00:00:00Z")));
            assert_eq!(
                (a.health, a.reason, a.force),
                (Health::Unhealthy, Some(format!("event_{code}")), true)
            );
        }
        for newest in [
            None,
            Some(event(200, "x")),
            Some(event(500, "x")),
            Some(CredentialEvent {
                status_code: None,
                created_date: None,
            }),
        ] {
            assert_eq!(assess(Some(&held("OK")), newest.as_ref()).health, Health::Healthy);
        }
    }

    #[test]
    fn pending_is_left_alone() {
        let a = assess(Some(&held("PROCESSING")), Some(&event(401, "x")));
        assert_eq!((a.health, a.reason, a.force), (Health::Pending, None, false));
    }

    #[test]
    fn the_newest_event_is_the_latest_date_or_the_last() {
        let events = vec![
            event(200, "2026-01-02T00:00:00Z"),
            event(401, "2026-01-03T00:00:00Z"),
            event(500, "2026-01-01T00:00:00Z"),
        ];
        assert_eq!(newest_event(&events, None).unwrap().status_code, Some(401));
        let undated = vec![
            CredentialEvent {
                status_code: Some(1),
                created_date: None,
            },
            CredentialEvent {
                status_code: Some(2),
                created_date: None,
            },
        ];
        assert_eq!(newest_event(&undated, None).unwrap().status_code, Some(2));
        assert_eq!(newest_event(&[], None), None);
    }

    #[test]
    fn events_older_than_the_credentials_do_not_count() {
        let events = vec![
            event(401, "2026-01-01T00:00:00Z"),
            event(200, "2026-01-01T00:00:05.123Z"),
        ];
        let created = Some("2026-01-02T08:00:00.000Z");
        assert_eq!(
            newest_event(&events, created),
            None,
            "both are about earlier credentials"
        );
        let later = vec![
            event(401, "2026-01-02T08:00:00Z"),
            event(200, "2025-12-31T00:00:00Z"),
        ];
        assert_eq!(
            newest_event(&later, created).unwrap().status_code,
            Some(401),
            "same second counts"
        );
        assert_eq!(newest_event(&events, None).unwrap().status_code, Some(200));
    }
}
