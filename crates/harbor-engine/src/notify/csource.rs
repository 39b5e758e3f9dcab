//! Notifications of subscriptions to context source registrations (5.11.7): a
//! `ContextSourceNotification` carrying the registrations a subscription (no longer) matches,
//! with only the `information` elements it selects, and the `triggerReason` (`newlyMatching`,
//! `updated`, `noLongerMatching`). Sent when the subscription is created or updated (every
//! matching registration), when a registration changes, and every `timeInterval`.
//!
//! Registrations change rarely and a receiver can always re-read them, so these
//! notifications are sent at once, one attempt each, without the outbox; their outcome is
//! counted in the subscription's status members.

use std::collections::HashMap;
use std::sync::Arc;

use harbor_jsonld::registration::render_registration;
use harbor_jsonld::CORE_CONTEXT_URL;
use harbor_model::{time, Registration, Subscription, Tenant, Timestamp};
use serde_json::{Map, Value};

use super::{Compiled, Notifier, Outgoing};

/// Why a registration is in a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NewlyMatching,
    Updated,
    NoLongerMatching,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::NewlyMatching => "newlyMatching",
            Reason::Updated => "updated",
            Reason::NoLongerMatching => "noLongerMatching",
        }
    }
}

/// Subscriptions to registrations, compiled, per tenant and id.
pub type CsourceIndex = HashMap<Tenant, HashMap<String, Arc<Compiled>>>;

impl Notifier {
    /// (Re)compiles a subscription to registrations and sends it every registration it
    /// matches now (unless it is periodic: the timer does that).
    pub async fn csource_subscription_changed(
        &self,
        tenant: &Tenant,
        sub: Arc<Subscription>,
        registrations: Vec<Arc<Registration>>,
    ) {
        let id = sub.id.clone();
        let compiled = match self.compile(sub).await {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::warn!(tenant = %tenant.as_str(), subscription = %id, error = %e, "subscription to registrations cannot be matched");
                self.csource_subscription_removed(tenant, &id);
                return;
            }
        };
        self.csource
            .write()
            .expect("csource lock")
            .entry(tenant.clone())
            .or_default()
            .insert(id, compiled.clone());
        if compiled.sub.time_interval.is_none() {
            self.send_matching(tenant, &compiled, &registrations, Reason::NewlyMatching);
        }
    }

    /// Forgets a deleted subscription to registrations.
    pub fn csource_subscription_removed(&self, tenant: &Tenant, id: &str) {
        if let Some(m) = self.csource.write().expect("csource lock").get_mut(tenant) {
            m.remove(id);
        }
        self.csource_statuses
            .lock()
            .expect("status lock")
            .remove(&(tenant.clone(), id.to_string()));
    }

    /// A registration was created (`before` none), updated, or deleted (`after` none).
    pub fn registration_changed(
        &self,
        tenant: &Tenant,
        before: Option<&Registration>,
        after: Option<&Registration>,
    ) {
        let subs: Vec<Arc<Compiled>> = self
            .csource
            .read()
            .expect("csource lock")
            .get(tenant)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let now = time::now();
        for c in subs {
            if !active(&c, now) || c.sub.time_interval.is_some() {
                continue;
            }
            // What the owner may see of the registration, before and after.
            let seen = |r: Option<&Registration>| {
                r.and_then(|r| self.seen_registration(tenant, &c.sub, r))
            };
            let (before, after) = (seen(before), seen(after));
            let was = before.as_ref().and_then(|r| Some((r, c.selected_info(r)?)));
            let is = after.as_ref().and_then(|r| Some((r, c.selected_info(r)?)));
            let ((reg, info), reason) = match (was, is) {
                (Some(_), Some(now)) => (now, Reason::Updated),
                (None, Some(now)) => (now, Reason::NewlyMatching),
                (Some(then), None) => (then, Reason::NoLongerMatching),
                (None, None) => continue,
            };
            let shown = Registration {
                information: info,
                ..reg.clone()
            };
            self.send(tenant, &c, vec![shown], reason);
        }
    }

    /// Every `timeInterval`: each periodic subscription to registrations gets every
    /// registration it matches.
    pub(super) fn csource_periodic(&self, last: &mut HashMap<(Tenant, String), Timestamp>) {
        let Some(store) = self.registrations.get() else {
            return;
        };
        let now = time::now();
        let due: Vec<(Tenant, Arc<Compiled>)> = self
            .csource
            .read()
            .expect("csource lock")
            .iter()
            .flat_map(|(t, m)| m.values().map(move |c| (t.clone(), c.clone())))
            .filter(|(t, c)| {
                c.sub.time_interval.is_some_and(|secs| {
                    active(c, now)
                        && last
                            .get(&(t.clone(), c.sub.id.clone()))
                            .is_none_or(|l| (now - *l).num_milliseconds() as f64 >= secs * 1000.0)
                })
            })
            .collect();
        for (tenant, c) in due {
            last.insert((tenant.clone(), c.sub.id.clone()), now);
            let regs = store.registrations(&tenant);
            self.send_matching(&tenant, &c, &regs, Reason::NewlyMatching);
        }
    }

    fn send_matching(
        &self,
        tenant: &Tenant,
        c: &Arc<Compiled>,
        registrations: &[Arc<Registration>],
        reason: Reason,
    ) {
        let now = time::now();
        if !active(c, now) {
            return;
        }
        let shown: Vec<Registration> = registrations
            .iter()
            .filter(|r| r.expires_at.is_none_or(|t| t > now))
            .filter_map(|r| self.seen_registration(tenant, &c.sub, r))
            .filter_map(|r| {
                c.selected_info(&r).map(|info| Registration {
                    information: info,
                    ..r
                })
            })
            .collect();
        if !shown.is_empty() {
            self.send(tenant, c, shown, reason);
        }
    }

    /// Renders and sends one notification in the background, counting its outcome.
    fn send(&self, tenant: &Tenant, c: &Arc<Compiled>, regs: Vec<Registration>, reason: Reason) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let tenant = tenant.clone();
        let c = c.clone();
        tokio::spawn(async move {
            let now = time::now();
            let msg = me.csource_outgoing(&tenant, &c, &regs, reason, now);
            let sent = std::time::Instant::now();
            let result = me.transport.send(&msg).await;
            let done = time::now();
            me.count_attempt(sent, result.is_ok(), &[], done);
            let key = (tenant, c.sub.id.clone());
            let mut all = me.csource_statuses.lock().expect("status lock");
            let st = all
                .entry(key)
                .or_insert_with(|| c.sub.notification.status.clone());
            st.record(now, done, result.is_ok());
        });
    }

    fn csource_outgoing(
        &self,
        tenant: &Tenant,
        c: &Compiled,
        regs: &[Registration],
        reason: Reason,
        now: Timestamp,
    ) -> Outgoing {
        let sub = &c.sub;
        let context_url = sub
            .jsonld_context
            .clone()
            .unwrap_or_else(|| CORE_CONTEXT_URL.to_string());
        let ld = sub.notification.endpoint.accept == "application/ld+json";
        let mut n = Map::new();
        n.insert(
            "id".into(),
            Value::String(format!("urn:ngsi-ld:Notification:{}", uuid::Uuid::new_v4())),
        );
        n.insert(
            "type".into(),
            Value::String("ContextSourceNotification".into()),
        );
        n.insert("subscriptionId".into(), Value::String(sub.id.clone()));
        n.insert("notifiedAt".into(), Value::String(time::format(&now)));
        n.insert(
            "data".into(),
            Value::Array(
                regs.iter()
                    .map(|r| render_registration(r, &c.render_ctx, sub.notification.sys_attrs))
                    .collect(),
            ),
        );
        n.insert(
            "triggerReason".into(),
            Value::String(reason.as_str().into()),
        );
        if ld {
            n.insert("@context".into(), Value::String(context_url.clone()));
        }
        let body = serde_json::to_vec(&Value::Object(n)).unwrap_or_default();
        self.message(
            tenant,
            sub,
            body,
            if ld {
                "application/ld+json"
            } else {
                "application/json"
            },
            (!ld).then_some(context_url),
        )
    }

    /// The live delivery status of a subscription to registrations.
    pub fn csource_live_status(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Option<harbor_model::subscription::DeliveryStatus> {
        self.csource_statuses
            .lock()
            .expect("status lock")
            .get(&(tenant.clone(), id.to_string()))
            .cloned()
    }
}

fn active(c: &Compiled, now: Timestamp) -> bool {
    c.sub.status(now) == harbor_model::subscription::SubscriptionStatus::Active
}
