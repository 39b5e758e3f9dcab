//! Connects the engine's notification pipeline to `harbor-outbound`'s HTTP and MQTT clients.

use async_trait::async_trait;
use harbor_engine::notify::{Outgoing, SendError, Transport};
use harbor_outbound::{DeliveryError, Message, Notifier};

pub struct Outbound(pub Notifier);

#[async_trait]
impl Transport for Outbound {
    async fn send(&self, msg: &Outgoing) -> Result<(), SendError> {
        let m = Message {
            uri: msg.uri.clone(),
            body: msg.body.clone(),
            content_type: msg.content_type.clone(),
            headers: msg.headers.clone(),
            notifier_info: msg.notifier_info.clone(),
            timeout: msg.timeout,
        };
        self.0.deliver(&m).await.map_err(|e| match e {
            DeliveryError::Retry(r) => SendError::Retry(r),
            DeliveryError::Fail(r) => SendError::Fail(r),
        })
    }
}
