//! API Gateway HTTP API (payload 2.0): routing, request bodies and JSON responses.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::HeaderValue;
use aws_lambda_events::http::header::CONTENT_TYPE;
use base64::Engine;
use serde_json::{Value, json};

use super::request::{BadRequest, MAX_BODY_BYTES};
use crate::domain::error::ConnectorError;

/// The routes of the product's HTTP API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `POST /connections`
    Connect,
    /// `DELETE /connections/{leafUserId}`
    Disconnect(String),
    /// `POST /leaf/alerts`: Leaf's signed webhook.
    LeafAlert,
    /// `GET /connections/{leafUserId}`
    Status(String),
    /// Anything else, with the method and path that were asked for.
    Unknown(String),
}

/// Finds the route from the route key API Gateway matched, or from method and path when the
/// request came through a `$default` route.
pub(crate) fn route(request: &ApiGatewayV2httpRequest) -> Route {
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
        "POST /leaf/alerts" => return Route::LeafAlert,
        "DELETE /connections/{leafUserId}" => return Route::Disconnect(from_path_parameter()),
        "GET /connections/{leafUserId}" => return Route::Status(from_path_parameter()),
        _ => {}
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["connections"]) => Route::Connect,
        ("POST", ["leaf", "alerts"]) => Route::LeafAlert,
        ("DELETE", ["connections", id]) => Route::Disconnect((*id).to_owned()),
        ("GET", ["connections", id]) => Route::Status((*id).to_owned()),
        _ => Route::Unknown(format!("{method} {}", path.chars().take(100).collect::<String>())),
    }
}

/// Why a request body could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Larger than this many bytes, before or after base64 decoding.
    TooLarge(usize),
    /// Marked base64, but not valid base64.
    NotBase64,
}

impl From<BodyError> for BadRequest {
    fn from(e: BodyError) -> Self {
        BadRequest(match e {
            BodyError::TooLarge(limit) => format!("the body is larger than {} KiB", limit / 1024),
            BodyError::NotBase64 => "the body is marked base64 but is not valid base64".into(),
        })
    }
}

/// The request body as bytes, decoded from base64 when API Gateway encoded it.
pub(crate) fn body_bytes(request: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, BadRequest> {
    Ok(body_bytes_within(request, MAX_BODY_BYTES)?)
}

/// The request body as bytes, refused when larger than `limit` (before or after decoding).
pub(crate) fn body_bytes_within(
    request: &ApiGatewayV2httpRequest,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let Some(body) = request.body.as_deref() else {
        return Ok(Vec::new());
    };
    // Base64 is 4/3 of the raw size: refuse early without decoding something huge.
    if body.len() > limit * 4 / 3 + 4 {
        return Err(BodyError::TooLarge(limit));
    }
    let bytes = if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| BodyError::NotBase64)?
    } else {
        body.as_bytes().to_vec()
    };
    if bytes.len() > limit {
        return Err(BodyError::TooLarge(limit));
    }
    Ok(bytes)
}

/// A payload 2.0 response, as API Gateway reads it.
pub(crate) type Response = ApiGatewayV2httpResponse;

/// A response with a JSON body.
pub(crate) fn json_response(status: u16, body: &Value) -> Response {
    let mut response = Response::default();
    response.status_code = i64::from(status);
    response
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.body = Some(Body::Text(body.to_string()));
    response
}

/// A response with no body (`204`).
pub(crate) fn empty_response(status: u16) -> Response {
    let mut response = Response::default();
    response.status_code = i64::from(status);
    response
}

/// `{"leafUserId", "outcome": "failed", "error": {"code", "message"}, "requestId"}` with the
/// error's status. The message is the public one; the log line of `request_id` has the rest.
pub(crate) fn error_response(
    request_id: &str,
    leaf_user_id: Option<&str>,
    error: &ConnectorError,
) -> Response {
    let body = error_body(request_id, leaf_user_id, error.code(), &error.public_message());
    json_response(error.http_status(), &body)
}

/// The body of every failed answer.
pub(crate) fn error_body(request_id: &str, leaf_user_id: Option<&str>, code: &str, message: &str) -> Value {
    json!({
        "leafUserId": leaf_user_id,
        "outcome": "failed",
        "error": {"code": code, "message": message},
        "requestId": request_id,
    })
}

/// The `400 invalid_request` answer to a request that cannot be read, logged once.
pub(crate) fn invalid_request(request_id: &str, bad: &BadRequest) -> Response {
    tracing::warn!(trigger = "api", outcome = "rejected", code = "invalid_request", reason = %bad,
        "request refused");
    json_response(400, &error_body(request_id, None, "invalid_request", &bad.0))
}

/// The `404 route_not_found` answer, naming the routes this function does serve.
pub(crate) fn route_not_found(request_id: &str, function: &str, serves: &str) -> Response {
    tracing::warn!(
        code = "route_not_found",
        "no such route on the {function} function"
    );
    let message = format!("{function} serves {serves}");
    json_response(404, &error_body(request_id, None, "route_not_found", &message))
}

/// The response as the JSON the runtime sends back.
pub(crate) fn to_value(response: Response) -> Value {
    serde_json::to_value(response).expect("a response always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(route_key: &str, method: &str, path: &str) -> ApiGatewayV2httpRequest {
        let mut event: Value =
            serde_json::from_str(include_str!("../../../events/connect-api.json")).unwrap();
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

    #[test]
    fn the_limit_holds_before_and_after_decoding() {
        let mut r = request("POST /leaf/alerts", "POST", "/leaf/alerts");
        r.body = Some("x".repeat(101));
        assert_eq!(
            body_bytes_within(&r, 100),
            Err(BodyError::TooLarge(100)),
            "plain, just over"
        );
        r.body = Some(base64::engine::general_purpose::STANDARD.encode([b'x'; 101]));
        r.is_base64_encoded = true;
        assert_eq!(
            body_bytes_within(&r, 100),
            Err(BodyError::TooLarge(100)),
            "decoded, just over"
        );
        r.body = Some(base64::engine::general_purpose::STANDARD.encode([b'x'; 100]));
        assert_eq!(body_bytes_within(&r, 100).map(|b| b.len()), Ok(100));
        r.body = Some("***".into());
        assert_eq!(body_bytes_within(&r, 100), Err(BodyError::NotBase64));
    }

    #[test]
    fn responses_follow_the_payload_format() {
        let ok = to_value(json_response(201, &json!({"a": 1})));
        assert_eq!(
            (
                &ok["statusCode"],
                &ok["headers"]["content-type"],
                &ok["body"],
                &ok["isBase64Encoded"]
            ),
            (
                &json!(201),
                &json!("application/json"),
                &json!("{\"a\":1}"),
                &json!(false)
            )
        );
        let empty = to_value(empty_response(204));
        assert_eq!((&empty["statusCode"], empty.get("body")), (&json!(204), None));
    }
}
