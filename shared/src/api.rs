//! API Gateway HTTP API (payload 2.0): routing, request bodies and JSON responses.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use base64::Engine;
use serde_json::{Value, json};

use crate::error::ConnectorError;
use crate::request::{BadRequest, MAX_BODY_BYTES};

/// The routes of the product's HTTP API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /connections`
    Connect,
    /// `DELETE /connections/{leafUserId}`
    Disconnect(String),
    /// `GET /connections/{leafUserId}`
    Status(String),
    /// Anything else, with the method and path that were asked for.
    Unknown(String),
}

/// Finds the route from the route key API Gateway matched, or from method and path when the
/// request came through a `$default` route.
pub fn route(request: &ApiGatewayV2httpRequest) -> Route {
    let method = request.request_context.http.method.as_str().to_ascii_uppercase();
    let path = request.raw_path.as_deref().unwrap_or("/");
    let route_key = request
        .route_key
        .as_deref()
        .or(request.request_context.route_key.as_deref())
        .unwrap_or("$default");
    let from_path_parameter = || {
        request
            .path_parameters
            .get("leafUserId")
            .cloned()
            .unwrap_or_default()
    };
    match route_key {
        "POST /connections" => return Route::Connect,
        "DELETE /connections/{leafUserId}" => return Route::Disconnect(from_path_parameter()),
        "GET /connections/{leafUserId}" => return Route::Status(from_path_parameter()),
        _ => {}
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["connections"]) => Route::Connect,
        ("DELETE", ["connections", id]) => Route::Disconnect((*id).to_owned()),
        ("GET", ["connections", id]) => Route::Status((*id).to_owned()),
        _ => Route::Unknown(format!("{method} {}", path.chars().take(100).collect::<String>())),
    }
}

/// The request body as bytes, decoded from base64 when API Gateway encoded it.
pub fn body_bytes(request: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, BadRequest> {
    let Some(body) = request.body.as_deref() else {
        return Ok(Vec::new());
    };
    // Base64 is 4/3 of the raw size: refuse early without decoding something huge.
    if body.len() > MAX_BODY_BYTES * 4 / 3 + 4 {
        return Err(BadRequest(format!(
            "the body is larger than {} KiB",
            MAX_BODY_BYTES / 1024
        )));
    }
    if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| BadRequest("the body is marked base64 but is not valid base64".into()))
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

/// A payload 2.0 response with a JSON body.
pub fn json_response(status: u16, body: &Value) -> Value {
    json!({
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": body.to_string(),
        "isBase64Encoded": false,
    })
}

/// A payload 2.0 response with no body (`204`).
pub fn empty_response(status: u16) -> Value {
    json!({"statusCode": status, "headers": {}, "isBase64Encoded": false})
}

/// `{"leafUserId", "outcome": "failed", "error": {"code", "message"}}` with the error's status.
pub fn error_response(leaf_user_id: Option<&str>, error: &ConnectorError) -> Value {
    json_response(
        error.http_status(),
        &error_body(leaf_user_id, error.code(), &error.to_string()),
    )
}

pub fn error_body(leaf_user_id: Option<&str>, code: &str, message: &str) -> Value {
    json!({
        "leafUserId": leaf_user_id,
        "outcome": "failed",
        "error": {"code": code, "message": message},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(route_key: &str, method: &str, path: &str) -> ApiGatewayV2httpRequest {
        let mut event: Value = serde_json::from_str(include_str!("../../events/connect-api.json")).unwrap();
        event["routeKey"] = json!(route_key);
        event["requestContext"]["routeKey"] = json!(route_key);
        event["requestContext"]["http"]["method"] = json!(method);
        event["rawPath"] = json!(path);
        event["pathParameters"] = json!({});
        serde_json::from_value(event).unwrap()
    }

    #[test]
    fn routes_by_route_key_or_by_path() {
        assert_eq!(
            route(&request("POST /connections", "POST", "/connections")),
            Route::Connect
        );
        assert_eq!(
            route(&request("$default", "POST", "/connections/")),
            Route::Connect
        );
        assert_eq!(
            route(&request("$default", "DELETE", "/connections/abc")),
            Route::Disconnect("abc".into())
        );
        assert_eq!(
            route(&request("$default", "GET", "/connections/abc")),
            Route::Status("abc".into())
        );
        assert!(matches!(
            route(&request("$default", "GET", "/connections")),
            Route::Unknown(_)
        ));
        assert!(matches!(
            route(&request("$default", "PUT", "/other")),
            Route::Unknown(_)
        ));
    }

    #[test]
    fn base64_bodies_are_decoded() {
        let mut r = request("POST /connections", "POST", "/connections");
        r.body = Some(base64::engine::general_purpose::STANDARD.encode(b"{\"a\":1}"));
        r.is_base64_encoded = true;
        assert_eq!(body_bytes(&r).unwrap(), b"{\"a\":1}");
        r.body = Some("***".into());
        assert!(body_bytes(&r).is_err());
    }
}
