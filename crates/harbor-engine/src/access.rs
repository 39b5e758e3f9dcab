//! The write rule of the request being served: an identity that may write only part of a
//! tenant (an access policy) has each change it makes checked here, under the entity's lock,
//! against the entity as it is and as it would become. Checking at the commit, and not in
//! the API, means no write path can miss it and no concurrent write can slip between the
//! check and the change.
//!
//! The rule travels with the request's task ([`with_rule`]): requests without one (a role
//! that grants the whole tenant, or `auth = none`) are not checked.

use std::future::Future;
use std::sync::Arc;

use harbor_model::{Entity, NgsiResult};

/// Decides whether one change of one entity is allowed.
pub trait WriteRule: Send + Sync {
    /// `before` is the entity as stored (`None`: it does not exist), `after` what the change
    /// makes of it (`None`: it is deleted), `touched` the attributes the change adds, alters
    /// or removes. The error says why not (Forbidden, or NotFound for an entity the
    /// identity may not see at all).
    fn check(
        &self,
        before: Option<&Entity>,
        after: Option<&Entity>,
        touched: &[&str],
    ) -> NgsiResult<()>;
}

tokio::task_local! {
    static RULE: Arc<dyn WriteRule>;
}

/// Runs `f` with `rule` checking every entity change it makes.
pub async fn with_rule<F: Future>(rule: Arc<dyn WriteRule>, f: F) -> F::Output {
    RULE.scope(rule, f).await
}

/// The attributes that differ between `before` and `after`.
fn touched<'a>(before: Option<&'a Entity>, after: Option<&'a Entity>) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::new();
    match (before, after) {
        (Some(b), Some(a)) => {
            for (name, list) in &a.attrs {
                if b.attrs.get(name) != Some(list) {
                    names.push(name);
                }
            }
            for name in b.attrs.keys() {
                if !a.attrs.contains_key(name) {
                    names.push(name);
                }
            }
        }
        (Some(e), None) | (None, Some(e)) => names.extend(e.attrs.keys().map(String::as_str)),
        (None, None) => {}
    }
    names
}

/// Whether the request being served carries a write rule.
pub(crate) fn active() -> bool {
    RULE.try_with(|_| ()).is_ok()
}

/// Checks one change against the request's rule, if it has one.
pub(crate) fn check(before: Option<&Entity>, after: Option<&Entity>) -> NgsiResult<()> {
    RULE.try_with(|rule| rule.check(before, after, &touched(before, after)))
        .unwrap_or(Ok(()))
}

/// Checks one change whose touched attributes the caller names: the Temporal API writes
/// instances of attributes whether or not the current state changes with them.
pub(crate) fn check_named(
    before: Option<&Entity>,
    after: Option<&Entity>,
    touched: &[&str],
) -> NgsiResult<()> {
    RULE.try_with(|rule| rule.check(before, after, touched))
        .unwrap_or(Ok(()))
}
