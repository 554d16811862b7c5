//! The drain with the mapping's SQS calls sent somewhere else than straight to moto: the AWS
//! proxy, for a queue it keeps in memory (`AwsProxy::serve_queue`), where moto's cost per call
//! grows with the messages it holds (the fan-out benchmark).

use super::{Drained, Mapping};
use crate::bed::{Bed, Running};
use crate::moto;

impl Mapping {
    /// [`drain`](Self::drain), with the pollers' and the watcher's SQS calls sent to `endpoint`
    /// (e.g. the AWS proxy's) instead of moto's.
    pub async fn drain_via(&self, endpoint: &str, bed: &Bed, function: &Running, queue_url: &str) -> Drained {
        let config = aws_sdk_sqs::config::Builder::from(&moto::sdk_config().await)
            .endpoint_url(endpoint)
            .build();
        let client = aws_sdk_sqs::Client::from_conf(config);
        self.drain_with(client, bed, function, queue_url).await
    }
}
