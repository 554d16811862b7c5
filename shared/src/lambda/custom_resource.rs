//! `Custom::LeafWebhook`: registers the alerts webhook at Leaf when the stack is deployed, and
//! removes it when the stack is deleted, answering CloudFormation on every path.

use serde_json::Value;

use super::trigger::CustomResourceRequest;

/// Handles one custom resource request. Not implemented yet: answers nothing.
pub(crate) async fn handle(request: &CustomResourceRequest) -> Value {
    tracing::warn!(
        requestType = request.request_type,
        "custom resource requests are not handled yet"
    );
    Value::Null
}
