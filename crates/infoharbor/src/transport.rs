//! Connects the engine's notification pipeline and its distributed operations to
//! `harbor-outbound`'s HTTP and MQTT clients.

use async_trait::async_trait;
use harbor_engine::forward::{ContextSourceClient, Forward};
use harbor_engine::notify::{Outgoing, SendError, Transport};
use harbor_engine::{EndpointCheck, EndpointPurpose};
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

pub struct Sources(pub harbor_outbound::sources::SourceClient);

#[async_trait]
impl ContextSourceClient for Sources {
    async fn get(&self, f: &Forward) -> Result<Option<serde_json::Value>, String> {
        let url = f.url();
        let mut headers = f.headers.clone();
        if let Some(t) = &f.tenant {
            headers.push(("NGSILD-Tenant".to_string(), t.clone()));
        }
        self.0.get_json(&url, &headers, f.timeout).await
    }
}

/// The egress policy as the engine asks it when a subscription or registration is written.
pub struct EndpointWall(pub harbor_outbound::EgressPolicy);

impl EndpointCheck for EndpointWall {
    fn check(&self, uri: &str, purpose: EndpointPurpose) -> Result<(), String> {
        let schemes: &[&str] = match purpose {
            EndpointPurpose::Notification => &["http", "https", "mqtt", "mqtts"],
            EndpointPurpose::ContextSource => &["http", "https"],
        };
        self.0.check_uri(uri, schemes).map_err(|r| r.to_string())
    }
}

/// The identity provider's discovery document and keys, fetched through the egress wall.
pub struct ProviderFetch(pub harbor_outbound::sources::SourceClient);

#[async_trait]
impl harbor_auth::JsonFetch for ProviderFetch {
    async fn get_json(&self, url: &str) -> Result<serde_json::Value, String> {
        self.0
            .get_json(url, &[], std::time::Duration::from_secs(5))
            .await?
            .ok_or_else(|| format!("{url} answered 404 Not Found"))
    }
}
