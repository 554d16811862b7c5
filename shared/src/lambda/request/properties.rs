//! Property tests of the connect request parser against the oracle in `crate::testing`:
//! whatever bytes or JSON arrive, nothing panics, the parser agrees with the oracle, and error
//! texts quote no values.

use proptest::prelude::*;
use serde_json::json;

use super::{MAX_BODY_BYTES, parse_connect_body};
use crate::testing::arbitrary::{arb_json, near_valid_body, near_valid_object, render, valid_body};
use crate::testing::oracle::{cases, check_parse};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn parse_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check_parse(&body)?;
    }

    #[test]
    fn parse_arbitrary_json(value in arb_json(), style in any::<u8>()) {
        check_parse(render(&value, style).as_bytes())?;
    }

    #[test]
    fn parse_near_valid_bodies(body in near_valid_body()) {
        check_parse(body.as_bytes())?;
    }

    #[test]
    fn parse_valid_bodies((body, want) in valid_body()) {
        prop_assert_eq!(parse_connect_body(body.as_bytes()), Ok(want));
    }

    #[test]
    fn parse_bodies_around_the_size_limit(
        (body, want) in valid_body(),
        len in MAX_BODY_BYTES - 16..MAX_BODY_BYTES + 16,
    ) {
        let padded = format!("{body:<len$}");
        let got = parse_connect_body(padded.as_bytes());
        if padded.len() <= MAX_BODY_BYTES {
            prop_assert_eq!(got, Ok(want));
        } else {
            prop_assert!(got.unwrap_err().0.contains("larger than"));
        }
    }

    /// Secrets pasted anywhere (in leafUserId, force, reason, a stray key's value, nested) never
    /// come back in the error text.
    #[test]
    fn errors_never_quote_a_secret(
        object in near_valid_object(),
        secret in "[A-Za-z0-9!#%&*+]{6,24}",
        at in 0..5u8,
        style in any::<u8>(),
    ) {
        let secret = format!("S3CR3T{secret}");
        let mut object = object;
        let slot = match at {
            0 => "leafUserId",
            1 => "force",
            2 => "reason",
            3 => "password",
            _ => "force",
        };
        // A string is a valid reason: a secret there must be wrapped to make the body invalid.
        let value = match at {
            2 => json!([secret]),
            4 => json!({"nested": [secret]}),
            _ => json!(secret),
        };
        object.as_object_mut().unwrap().insert(slot.into(), value);
        let body = render(&object, style);
        let err = parse_connect_body(body.as_bytes()).unwrap_err();
        prop_assert!(!err.0.contains("S3CR3T"), "{err}");
    }
}
