//! `GET /info/sourceIdentity` (5.15.1, 5.2.40): who this broker is, as a context source, to
//! the brokers that register it and to `Via` loop detection.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use harbor_model::{time, Timestamp};
use serde_json::json;

use crate::error::ApiResult;
use crate::{negotiate, reply, SharedState};

/// This broker's identity: a URI that stays the same across restarts, and when it started.
#[derive(Debug, Clone)]
pub struct SourceIdentity {
    pub id: String,
    pub started: Timestamp,
}

impl SourceIdentity {
    pub fn new(id: String) -> Self {
        SourceIdentity {
            id,
            started: time::now(),
        }
    }
}

/// An ISO 8601 duration of whole and fractional seconds, e.g. `P1DT2H3M4.5S`.
pub fn iso_duration(ms: i64) -> String {
    let ms = ms.max(0);
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    let (hours, rest) = (rest / 3_600_000, rest % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (secs, millis) = (rest / 1000, rest % 1000);
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    out.push('T');
    if hours > 0 {
        out.push_str(&format!("{hours}H"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}M"));
    }
    if millis > 0 {
        out.push_str(&format!("{secs}.{millis:03}S"));
    } else {
        out.push_str(&format!("{secs}S"));
    }
    out
}

/// GET /ngsi-ld/v1/info/sourceIdentity. `contextSourceAlias` names the tenant asked about
/// (Table 5.2.40-1: in multi-tenancy it "shall be identifying a specific Tenant"): the
/// broker's id for the default tenant, the id and the tenant name for the others.
pub async fn source_identity(
    State(s): State<SharedState>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let tenant = negotiate::tenant(&headers)?;
    negotiate::accept(&headers, false)?;
    let now = time::now();
    let me = &s.identity;
    let alias = if tenant.is_default() {
        me.id.clone()
    } else {
        format!("{}:{}", me.id, tenant.as_str())
    };
    Ok(reply::plain(
        StatusCode::OK,
        json!({
            "id": me.id,
            "type": "ContextSourceIdentity",
            "contextSourceAlias": alias,
            "contextSourceUptime": iso_duration((now - me.started).num_milliseconds()),
            "contextSourceTimeAt": time::format(&now),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::iso_duration;

    #[test]
    fn uptime_reads_as_an_iso_8601_duration() {
        for (ms, text) in [
            (0, "PT0S"),
            (1_500, "PT1.500S"),
            (61_000, "PT1M1S"),
            (3_600_000, "PT1H0S"),
            (90_061_007, "P1DT1H1M1.007S"),
            (-5, "PT0S"),
        ] {
            assert_eq!(iso_duration(ms), text, "{ms} ms");
        }
    }
}
