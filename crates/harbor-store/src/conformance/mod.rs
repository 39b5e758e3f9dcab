//! The conformance suite every backend runs: the behaviour the engine relies on, stated once,
//! as one async function per behaviour.
//!
//! A case takes a fresh, empty backend as [`Stores`] and panics with a message that names
//! what failed. [`store_conformance!`](crate::store_conformance) expands every case into its
//! own `#[tokio::test]` in the backend's test crate, so a failing case names itself and the
//! others still run. The list of cases lives in that macro and nowhere else, so one call
//! gives a backend every case, including the ones added later:
//!
//! ```text
//! async fn fresh() -> harbor_store::conformance::Stores {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
//!     Stores::of(store).keeping(dir)
//! }
//!
//! harbor_store::store_conformance!(fresh());
//! ```
//!
//! The argument is an expression of a future of [`Stores`], evaluated once per case in the
//! module that calls the macro. The calling crate needs `tokio` with `macros` and `rt` as a
//! dev-dependency. The tests come out as `store_conformance::<module>::<case>`, with one
//! module per store trait (`entities`, `contexts`, `admin`, `subscriptions`,
//! `registrations`, `feed`, `temporal`).
//!
//! A backend behind a server provides the same kind of factory. For PostgreSQL it is an
//! `async fn` that creates a database (or schema) of its own for the case, runs the
//! migrations, connects, and returns `Stores::of(Arc::new(store)).keeping(guard)`, where
//! `guard` drops that database when the case ends; cases run in parallel, each on its own
//! database. When the server is not there the factory panics, so every case fails loudly
//! instead of passing. A backend that implements the traits on several types fills in the
//! fields of [`Stores`] itself.
//!
//! A case that needs some state first builds it with the module's own fixtures, so every
//! case runs alone. Tests of what only one backend promises (the embedded store reopening
//! its files) call the cases too, on a store they keep.

pub mod admin;
pub mod contexts;
pub mod entities;
pub mod feed;
pub mod registrations;
pub mod subscriptions;
pub mod temporal;

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use harbor_model::{time, AttrValue, Attribute, Entity};
use serde_json::json;

use crate::{
    AdminStore, ContextStore, EntityStore, FeedStore, RegistrationStore, SubscriptionStore,
    TemporalStore,
};

/// One fresh, empty backend, by the store traits the cases use. Every field is the same
/// backend seen through one trait.
pub struct Stores {
    pub entities: Arc<dyn EntityStore>,
    pub contexts: Arc<dyn ContextStore>,
    pub admin: Arc<dyn AdminStore>,
    pub subscriptions: Arc<dyn SubscriptionStore>,
    pub registrations: Arc<dyn RegistrationStore>,
    pub feed: Arc<dyn FeedStore>,
    pub temporal: Arc<dyn TemporalStore>,
    /// What the backend keeps alive for the case (a temporary directory, a guard that drops
    /// a database). Declared last, so it is dropped after the stores.
    pub keep: Option<Box<dyn Any + Send + Sync>>,
}

impl Stores {
    /// A backend that implements every store trait on one type.
    pub fn of<S>(store: Arc<S>) -> Self
    where
        S: EntityStore
            + ContextStore
            + AdminStore
            + SubscriptionStore
            + RegistrationStore
            + FeedStore
            + TemporalStore
            + 'static,
    {
        Stores {
            entities: store.clone(),
            contexts: store.clone(),
            admin: store.clone(),
            subscriptions: store.clone(),
            registrations: store.clone(),
            feed: store.clone(),
            temporal: store,
            keep: None,
        }
    }

    /// Keeps `guard` until the stores are dropped.
    pub fn keeping(mut self, guard: impl Any + Send + Sync) -> Self {
        self.keep = Some(Box::new(guard));
        self
    }
}

/// Expands the conformance suite into one `#[tokio::test]` per case, each on a fresh backend
/// from `$factory`, an expression of a future of
/// [`conformance::Stores`](crate::conformance::Stores). The
/// [`conformance`](crate::conformance) module says how a backend calls it.
///
/// This is the one list of cases: a new case is a `pub async fn` in its module under
/// `conformance/` and a name here (a test of `harbor-store` fails when the two differ).
/// The `@` arms are internal.
#[macro_export]
macro_rules! store_conformance {
    (@cases $then:ident [$($args:tt)*]) => {
        $crate::store_conformance! { @$then [$($args)*]
            entities {
                only_the_default_tenant_exists_in_a_fresh_store,
                committed_entities_are_visible,
                entities_are_isolated_per_tenant,
                ensure_tenant_creates_an_empty_tenant,
                commit_of_a_new_tenant_creates_it,
                replacing_and_deleting_update_the_count,
                query_without_filters_returns_everything_sorted_by_id,
                query_by_type_follows_replace_and_delete,
                query_by_type_union_matches_either_type,
                query_by_q_compares_values,
                query_by_ids_finds_only_stored_ids,
                query_by_id_pattern_matches_the_pattern,
                query_by_attrs_finds_entities_that_have_them,
                query_near_finds_points_within_the_distance,
                a_page_is_cut_from_the_matches_in_id_order,
                a_count_alone_counts_every_match,
                pages_follow_the_order_asked_for_with_absent_values_last,
                a_page_leaves_out_expired_entities,
                value_queries_follow_changed_values,
                geo_index_finds_a_replaced_location_at_its_new_place,
                geo_index_forgets_a_replaced_location,
                replacing_without_an_attribute_drops_it_from_the_attribute_index,
                replacing_only_a_value_keeps_the_type_and_geo_index,
                expiring_finds_entities_by_their_earliest_expiry,
                replacing_without_expiry_leaves_the_expiry_index,
                expiry_is_per_tenant,
                deleting_everything_empties_every_index,
            }
            contexts {
                a_fresh_store_has_no_contexts,
                contexts_are_listed_sorted_by_id,
                context_put_replaces_and_delete_removes,
                deleting_an_absent_context_is_no_error,
            }
            admin {
                admin_records_are_listed_sorted_by_id,
                admin_put_replaces_and_delete_removes,
                admin_kinds_are_separate_namespaces,
                admin_pages_go_through_one_kind_in_order,
            }
            subscriptions {
                a_fresh_store_has_no_subscriptions,
                subscriptions_are_listed_sorted_by_id_and_deletes_remove,
                the_last_subscription_put_wins_with_every_member,
                subscriptions_are_isolated_per_tenant,
                a_subscription_delete_stays_in_its_tenant,
            }
            registrations {
                a_fresh_store_has_no_registrations,
                registrations_are_listed_sorted_by_id_and_deletes_remove,
                the_last_registration_put_wins_with_every_member,
                registrations_are_isolated_per_tenant,
                csource_subscriptions_are_listed_and_deletes_remove,
                csource_subscriptions_are_not_entity_subscriptions,
                csource_subscriptions_are_isolated_per_tenant,
            }
            feed {
                each_real_change_is_one_record_numbered_in_commit_order,
                a_creation_record_changes_every_attribute,
                an_update_record_holds_only_what_changed,
                a_deletion_record_keeps_the_whole_entity,
                records_are_read_by_seq_and_after_a_seq,
                outbox_commit_numbers_deliveries_and_moves_the_matcher_cursor,
                outbox_commit_settles_and_replaces_deliveries,
                trimming_drops_records_below_the_cut,
                trimming_stops_at_what_the_history_has_not_recorded,
            }
            temporal {
                a_commit_leaves_recording_to_the_historian,
                recording_a_creation_records_the_header_and_every_attribute,
                recording_an_update_adds_an_instance,
                recording_the_same_records_again_writes_the_same_rows,
                an_attribute_left_alone_records_nothing_new,
                recording_a_deletion_adds_deleted_instances_and_keeps_the_history,
                instances_come_back_in_time_order_also_before_1970,
                a_range_is_from_inclusive_to_exclusive,
                newest_first_stops_when_told,
                temporal_entities_belong_to_their_tenant,
                temporal_headers_are_listed_by_id,
                deleting_an_instance_by_id_removes_only_it,
                retention_drops_only_what_is_older_than_the_cut,
                deleting_an_attribute_removes_every_instance,
                deleting_a_temporal_entity_removes_it_and_only_it,
                samples_agree_with_instances_for_every_kind_range_and_time,
                a_sample_visit_stops_when_told,
                a_long_series_written_out_of_order_reads_back_in_order,
                a_long_series_loses_exactly_the_instances_deleted_by_id,
                a_long_series_loses_exactly_what_retention_cuts,
                a_long_series_puts_a_late_older_instance_first,
            }
        }
    };
    (@tests [$factory:expr] $($module:ident { $($case:ident,)* })*) => {
        /// The store conformance suite of `harbor_store::conformance`, one test per case.
        mod store_conformance {
            $(
                mod $module {
                    // The factory is named as the calling module names it.
                    #[allow(unused_imports)]
                    use super::super::*;

                    $(
                        #[tokio::test]
                        async fn $case() {
                            let stores: $crate::conformance::Stores = $factory.await;
                            $crate::conformance::$module::$case(&stores).await;
                        }
                    )*
                }
            )*
        }
    };
    (@names [] $($module:ident { $($case:ident,)* })*) => {
        &[$($(concat!(stringify!($module), "::", stringify!($case)),)*)*]
    };
    ($factory:expr $(,)?) => {
        $crate::store_conformance!(@cases tests [$factory]);
    };
}

const NS: &str = "https://smartdatamodels.org/";

fn expand(s: &str) -> String {
    format!("{NS}{s}")
}

/// A parking entity in Singapore with a location and a number of free spots.
pub fn parking(n: u32, free: i64, lon: f64, lat: f64) -> Entity {
    let now = time::now();
    let mut attrs = BTreeMap::new();
    attrs.insert(
        expand("availableSpotNumber"),
        vec![Attribute::new(AttrValue::Property(json!(free)), now)],
    );
    attrs.insert(
        harbor_model::names::LOCATION.to_string(),
        vec![Attribute::new(
            AttrValue::GeoProperty(json!({"type": "Point", "coordinates": [lon, lat]})),
            now,
        )],
    );
    Entity {
        id: format!("urn:ngsi-ld:OffStreetParking:sg-{n:04}"),
        types: vec![expand("OffStreetParking")],
        scopes: vec!["/Singapore/Central".into()],
        attrs,
        created_at: now,
        modified_at: now,
        expires_at: None,
    }
}

/// The header of a temporal `Vehicle` created now.
fn vehicle_header(id: &str) -> harbor_model::TemporalHeader {
    harbor_model::TemporalHeader {
        id: id.to_string(),
        types: vec![expand("Vehicle")],
        scopes: vec![],
        created_at: time::now(),
        modified_at: time::now(),
        provided_current: false,
    }
}

fn ids(v: &[std::sync::Arc<Entity>]) -> Vec<String> {
    v.iter().map(|e| e.id.clone()).collect()
}

/// A subscription for the conformance cases, with a notification endpoint and one selector.
pub fn subscription(id: &str) -> harbor_model::Subscription {
    use harbor_model::subscription::*;
    let now = time::now();
    harbor_model::Subscription {
        id: id.into(),
        name: None,
        description: None,
        entities: vec![EntitySelector {
            id: None,
            id_pattern: None,
            type_expr: expand("OffStreetParking"),
        }],
        watched_attributes: Some(vec![expand("availableSpotNumber")]),
        notification_trigger: DEFAULT_TRIGGERS.iter().map(|s| s.to_string()).collect(),
        time_interval: None,
        q: Some("availableSpotNumber<10".into()),
        geo_q: None,
        scope_q: None,
        csf: None,
        is_active: None,
        expires_at: None,
        throttling: None,
        lang: None,
        dataset_id: None,
        temporal_q: None,
        jsonld_context: None,
        context: json!(NS),
        notification: NotificationParams {
            attributes: None,
            sys_attrs: false,
            format: NotificationFormat::Normalized,
            show_changes: false,
            pick: None,
            omit: None,
            join: None,
            join_level: None,
            endpoint: Endpoint {
                uri: "http://localhost:9999/notify".into(),
                accept: "application/json".into(),
                receiver_info: None,
                notifier_info: None,
                timeout: None,
                cooldown: None,
            },
            status: DeliveryStatus::default(),
        },
        created_at: now,
        modified_at: now,
        owner: None,
    }
}

/// A registration for the conformance cases, with one entity type and one property.
pub fn registration(id: &str) -> harbor_model::Registration {
    use harbor_model::registration::*;
    let now = time::now();
    harbor_model::Registration {
        id: id.into(),
        name: Some("parking sensors".into()),
        description: None,
        information: vec![RegistrationInfo {
            entities: Some(vec![RegisteredEntity {
                id: None,
                id_pattern: Some(".*downtown$".into()),
                entity_type: expand("OffStreetParking"),
            }]),
            property_names: Some(vec![expand("availableSpotNumber")]),
            relationship_names: None,
        }],
        tenant: None,
        observation_interval: None,
        management_interval: None,
        location: Some(json!({"type": "Point", "coordinates": [-8.5, 41.2]})),
        observation_space: None,
        operation_space: None,
        expires_at: None,
        endpoint: "http://cs.example.org:1026".into(),
        context_source_info: None,
        scope: None,
        mode: "inclusive".into(),
        operations: DEFAULT_OPERATIONS.iter().map(|s| s.to_string()).collect(),
        refresh_rate: None,
        management: None,
        extra: BTreeMap::from([(expand("brand"), json!("acme"))]),
        status: RegistrationStatus::default(),
        created_at: now,
        modified_at: now,
    }
}

#[cfg(test)]
mod tests {
    /// Every case of every module, as the macro lists them.
    const LISTED: &[&str] = crate::store_conformance!(@cases names []);

    const MODULES: [(&str, &str); 7] = [
        ("admin", include_str!("admin.rs")),
        ("contexts", include_str!("contexts.rs")),
        ("entities", include_str!("entities.rs")),
        ("feed", include_str!("feed.rs")),
        ("registrations", include_str!("registrations.rs")),
        ("subscriptions", include_str!("subscriptions.rs")),
        ("temporal", include_str!("temporal.rs")),
    ];

    #[test]
    fn the_macro_lists_every_case_and_only_cases() {
        let written: Vec<String> = MODULES
            .iter()
            .flat_map(|(module, source)| {
                source
                    .lines()
                    .filter_map(|l| l.strip_prefix("pub async fn "))
                    .map(move |l| format!("{module}::{}", &l[..l.find('(').unwrap()]))
            })
            .collect();
        let unlisted: Vec<&String> = written
            .iter()
            .filter(|c| !LISTED.contains(&c.as_str()))
            .collect();
        assert!(
            unlisted.is_empty(),
            "cases missing from store_conformance!, so no backend runs them: {unlisted:?}"
        );
        let unwritten: Vec<&&str> = LISTED
            .iter()
            .filter(|c| !written.iter().any(|w| w == *c))
            .collect();
        assert!(
            unwritten.is_empty(),
            "store_conformance! names cases that are not written: {unwritten:?}"
        );
        assert_eq!(LISTED.len(), written.len(), "every case is listed once");
    }
}
