//! The fleet of step 3: a dozen growers in every state a scheduled sweep meets.

use testbed::bed::Grower;

use crate::deployment::Deployment;

/// How a grower of the fleet was set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The grower connected through the API in step 1.
    StepOne,
    /// Leaf holds working credentials.
    Working,
    /// Leaf holds credentials it marked INVALID.
    Invalid,
    /// Leaf holds no credentials for the user.
    Missing,
    /// The stored Stara password is wrong; an earlier connect got 422.
    WrongPassword,
    /// The grower asked to be disconnected (DELETE).
    Disconnected,
}

/// What the demo claims for a grower of a role.
pub struct Expected {
    /// `health` before the sweep.
    pub before: &'static str,
    /// The repair the sweep queues (its `reason`) and what connect does with it.
    pub repair: Option<(&'static str, &'static str)>,
    /// `health` after the repairs.
    pub after: &'static str,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::StepOne => "connected in step 1",
            Role::Working => "working credentials",
            Role::Invalid => "Leaf status INVALID",
            Role::Missing => "no credentials at Leaf",
            Role::WrongPassword => "wrong stored password",
            Role::Disconnected => "disconnected (DELETE)",
        }
    }

    pub fn expected(self) -> Expected {
        let (before, repair, after) = match self {
            Role::StepOne | Role::Working => ("healthy", None, "healthy"),
            Role::Invalid => ("unhealthy", Some(("INVALID", "reconnected")), "healthy"),
            Role::Missing => ("missing", Some(("missing", "connected")), "healthy"),
            Role::WrongPassword => ("login_rejected", None, "login_rejected"),
            Role::Disconnected => ("disconnected", None, "disconnected"),
        };
        Expected {
            before,
            repair,
            after,
        }
    }
}

pub struct Member {
    pub grower: Grower,
    pub role: Role,
}

impl Member {
    pub fn id(&self) -> &str {
        &self.grower.leaf_user_id
    }

    /// The first block of the id: enough to tell the growers of the demo apart.
    pub fn short_id(&self) -> String {
        format!("{}…", &self.grower.leaf_user_id[..8])
    }
}

/// The fleet around the grower of step 1: 4 more with working credentials, 3 INVALID, 2 with no
/// credentials, 1 whose stored password Stara rejects, 1 disconnected. The last two get there
/// through the API, and the lines saying so are printed.
pub async fn build(d: &Deployment, first: Grower) -> Vec<Member> {
    let mut fleet = vec![Member {
        grower: first,
        role: Role::StepOne,
    }];
    let roles = [(Role::Working, 4), (Role::Invalid, 3), (Role::Missing, 2)];
    println!(
        "   The fleet: {} growers with working credentials (the one of step 1 among them), {} whose Leaf \
         status is INVALID,",
        1 + roles[0].1,
        roles[1].1
    );
    println!(
        "   {} with no credentials at Leaf, 1 with a wrong stored password, 1 disconnected:",
        roles[2].1
    );
    for (role, count) in roles {
        for _ in 0..count {
            let grower = d.bed.add_grower().await;
            match role {
                Role::Working => d.bed.standin.set_credential(&grower.leaf_user_id, "OK"),
                Role::Invalid => d.bed.standin.set_credential(&grower.leaf_user_id, "INVALID"),
                _ => {}
            }
            fleet.push(Member { grower, role });
        }
    }

    // A grower whose stored login has a wrong password: someone tries to connect them.
    let grower = d.bed.add_grower_without_secret().await;
    let mut wrong = grower.clone();
    wrong.password = format!("wrong-pw-{}", uuid::Uuid::new_v4().simple());
    d.bed.store_login(&wrong).await;
    let (status, body) = d.connect_now(&grower.leaf_user_id).await;
    let code = body["error"]["code"].as_str().unwrap_or_default();
    assert_eq!((status, code), (422, "stara_login_rejected"), "{body}");
    println!(
        "   POST /connections, a wrong password stored → {status} {code}: the rejected version is marked"
    );
    fleet.push(Member {
        grower,
        role: Role::WrongPassword,
    });

    // A connected grower who asks to be disconnected.
    let grower = d.bed.add_grower().await;
    d.bed.standin.set_credential(&grower.leaf_user_id, "OK");
    let (status, body) = d.disconnect(&grower.leaf_user_id).await;
    assert_eq!(status, 204, "DELETE /connections/{}: {body}", grower.leaf_user_id);
    assert!(d.bed.standin.credential(&grower.leaf_user_id).is_none());
    println!("   DELETE /connections/{{id}}, a grower who asked to leave → {status}: marked disconnected");
    fleet.push(Member {
        grower,
        role: Role::Disconnected,
    });
    fleet
}
