//! Handler of `DELETE /entities` (6.4.3.3): Purge Entities selected by a query (5.6.21).

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use harbor_engine::{PurgeAction, PurgeFilter};
use harbor_model::NgsiError;

use crate::body;
use crate::error::ApiResult;
use crate::negotiate;
use crate::params::{allowed, Params};
use crate::query;
use crate::reply;
use crate::SharedState;

/// DELETE /entities?… — 5.6.21.
pub async fn purge(
    State(s): State<SharedState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let p = Params::parse(raw.as_deref());
    p.only(allowed::PURGE)?;
    let tenant = negotiate::tenant(&headers)?;
    let ld = body::context_from_link(&s, &headers).await?;
    if let Some(linked) = p
        .list("attrs")?
        .and_then(|a| a.into_iter().find(|a| a.contains('{')))
    {
        return Err(NgsiError::bad_request(format!(
            "attrs: \"{linked}\" projects a linked entity, which Purge Entities does not support; name attributes of the purged entities only"
        ))
        .into());
    }
    let q = query::from_params(&p, &ld.ctx, false)?;
    let expand = |names: Vec<String>| names.iter().map(|n| ld.ctx.expand_term(n)).collect();
    let action = match (p.list("keep")?, p.list("drop")?) {
        (Some(_), Some(_)) => {
            return Err(NgsiError::bad_request(
                "keep and drop cannot be used together: keep lists the attributes to keep, drop the ones to delete",
            )
            .into())
        }
        (Some(keep), None) => PurgeAction::Keep(expand(keep)),
        (None, Some(drop)) => PurgeAction::Drop(expand(drop)),
        (None, None) => PurgeAction::Delete,
    };
    let filter = PurgeFilter {
        query: &q,
        local: p.flag("local")?,
    };
    s.engine.purge_entities(&tenant, filter, action).await?;
    Ok(reply::no_content())
}
