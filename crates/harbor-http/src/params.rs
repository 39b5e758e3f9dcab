//! URL query parameters into typed values (6.3.x): `options`, `format`, lists, numbers.

use harbor_jsonld::render::Format;
use harbor_model::{NgsiError, NgsiResult};

/// The decoded query parameters of one request.
pub struct Params(Vec<(String, String)>);

/// The `options` / `format` flags of a request.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options {
    pub key_values: bool,
    pub concise: bool,
    pub sys_attrs: bool,
    pub no_overwrite: bool,
    pub replace: bool,
    pub update: bool,
}

impl Options {
    pub fn format(&self) -> Format {
        if self.key_values {
            Format::KeyValues
        } else if self.concise {
            Format::Concise
        } else {
            Format::Normalized
        }
    }
}

/// The query parameters each operation defines (6.4 – 6.30); any other is refused (6.3.20).
pub mod allowed {
    /// Operations that define no query parameter (e.g. 6.10.3.1 POST, 6.11.3 on one
    /// subscription).
    pub const NONE: &[&str] = &[];
    /// GET /subscriptions, Query Subscriptions (6.10.3.2), and `options=count` as clients
    /// write the count request.
    pub const QUERY_SUBSCRIPTIONS: &[&str] = &["limit", "offset", "count", "options"];
    /// GET /csourceRegistrations, Query Context Source Registrations (6.8.3.2). Temporal,
    /// geo and `q`/`csf` filters are accepted and not yet applied.
    pub const QUERY_REGISTRATIONS: &[&str] = &[
        "id",
        "type",
        "idPattern",
        "attrs",
        "q",
        "csf",
        "scopeQ",
        "geometry",
        "georel",
        "coordinates",
        "geoproperty",
        "timeproperty",
        "timerel",
        "timeAt",
        "endTimeAt",
        "options",
        "limit",
        "offset",
        "count",
    ];
    /// GET /csourceRegistrations/{id} (6.9.3.1).
    pub const RETRIEVE_REGISTRATION: &[&str] = &["options"];
    /// GET /types, GET /attributes (6.25.3.1, 6.27.3.1).
    pub const DISCOVERY_LIST: &[&str] = &["details", "local"];
    /// GET /types/{type}, GET /attributes/{attr} (6.26.3.1, 6.28.3.1).
    pub const DISCOVERY_ONE: &[&str] = &["local"];
    /// DELETE /entities, Purge Entities (6.4.3.3).
    pub const PURGE: &[&str] = &[
        "id",
        "type",
        "idPattern",
        "attrs",
        "q",
        "csf",
        "georel",
        "geometry",
        "coordinates",
        "geoproperty",
        "scopeQ",
        "local",
        "keep",
        "drop",
    ];
    /// GET /temporal/entities/{id}, Retrieve Temporal Evolution of an Entity (6.19.3.1).
    pub const RETRIEVE_TEMPORAL: &[&str] = &[
        "attrs",
        "pick",
        "omit",
        "type",
        "lang",
        "datasetId",
        "timerel",
        "timeAt",
        "endTimeAt",
        "timeproperty",
        "lastN",
        "aggrMethods",
        "aggrPeriodDuration",
        "options",
        "format",
        "local",
        "entityMap",
    ];
    /// GET /temporal/entities, Query Temporal Evolution of Entities (6.18.3.2).
    pub const QUERY_TEMPORAL: &[&str] = &[
        "id",
        "type",
        "idPattern",
        "attrs",
        "pick",
        "omit",
        "q",
        "csf",
        "georel",
        "geometry",
        "coordinates",
        "geoproperty",
        "scopeQ",
        "lang",
        "datasetId",
        "timerel",
        "timeAt",
        "endTimeAt",
        "timeproperty",
        "lastN",
        "aggrMethods",
        "aggrPeriodDuration",
        "options",
        "format",
        "limit",
        "offset",
        "count",
        "local",
        "entityMap",
        "expandValues",
        "orderBy",
    ];
    /// DELETE /temporal/entities/{id}/attrs/{attrId} (6.21.3.1).
    pub const DELETE_TEMPORAL_ATTR: &[&str] = &["datasetId", "deleteAll"];
    /// GET /entities, Query Entities (6.4.3.2).
    pub const QUERY_ENTITIES: &[&str] = &[
        "id",
        "type",
        "idPattern",
        "attrs",
        "pick",
        "omit",
        "q",
        "csf",
        "georel",
        "geometry",
        "coordinates",
        "geoproperty",
        "geometryProperty",
        "lang",
        "scopeQ",
        "containedBy",
        "join",
        "joinLevel",
        "datasetId",
        "entityMap",
        "expandValues",
        "jsonKeys",
        "options",
        "format",
        "limit",
        "offset",
        "count",
        "local",
        "orderBy",
        "orderFrom",
        "orderGeometry",
        "collation",
    ];
}

impl Params {
    pub fn parse(raw: Option<&str>) -> Params {
        let pairs = raw
            .map(|r| form_urlencoded::parse(r.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Params(pairs)
    }

    /// Refuses any parameter the operation does not define (6.3.20: InvalidRequest).
    pub fn only(&self, allowed: &[&str]) -> NgsiResult<()> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some((k, _)) if allowed.is_empty() => Err(NgsiError::invalid(format!(
                "query parameter \"{k}\" is not defined for this operation, which takes none"
            ))),
            Some((k, _)) => Err(NgsiError::invalid(format!(
                "query parameter \"{k}\" is not defined for this operation; it takes {}",
                allowed.join(", ")
            ))),
        }
    }

    /// The value of a parameter; an empty value counts as given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A comma-separated list; each element non-empty.
    pub fn list(&self, key: &str) -> NgsiResult<Option<Vec<String>>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let items: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
        if items.iter().any(String::is_empty) {
            return Err(NgsiError::bad_request(format!(
                "parameter \"{key}\" has an empty element: \"{v}\""
            )));
        }
        Ok(Some(items))
    }

    /// A non-negative integer parameter.
    pub fn number(&self, key: &str) -> NgsiResult<Option<usize>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        v.parse::<usize>().map(Some).map_err(|_| {
            NgsiError::bad_request(format!(
                "parameter \"{key}\" must be a non-negative integer, got \"{v}\""
            ))
        })
    }

    /// A boolean parameter (`true` / `false`).
    pub fn flag(&self, key: &str) -> NgsiResult<bool> {
        match self.get(key) {
            None => Ok(false),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(NgsiError::bad_request(format!(
                "parameter \"{key}\" must be true or false, got \"{v}\""
            ))),
        }
    }

    /// `options` and `format`.
    pub fn options(&self) -> NgsiResult<Options> {
        let mut o = Options::default();
        let mut set = |word: &str, from: &str| -> NgsiResult<()> {
            match word {
                "keyValues" | "simplified" => o.key_values = true,
                "concise" => o.concise = true,
                "normalized" => {}
                "sysAttrs" if from == "options" => o.sys_attrs = true,
                "noOverwrite" if from == "options" => o.no_overwrite = true,
                "replace" if from == "options" => o.replace = true,
                "update" if from == "options" => o.update = true,
                other => {
                    return Err(NgsiError::invalid(format!(
                        "{from}: unknown value \"{other}\""
                    )))
                }
            }
            Ok(())
        };
        if let Some(v) = self.get("options") {
            for w in v.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                set(w, "options")?;
            }
        }
        if let Some(v) = self.get("format") {
            set(v.trim(), "format")?;
        }
        if o.key_values && o.concise {
            return Err(NgsiError::bad_request(
                "keyValues and concise cannot be asked for together",
            ));
        }
        Ok(o)
    }
}

impl Params {
    /// These parameters without the named ones.
    pub fn without(&self, keys: &[&str]) -> Params {
        Params(
            self.0
                .iter()
                .filter(|(k, _)| !keys.contains(&k.as_str()))
                .cloned()
                .collect(),
        )
    }

    /// Parameters from already decoded pairs.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Params {
        Params(pairs)
    }

    /// These parameters with `other`'s added where absent.
    pub fn merged(mut self, other: &Params) -> Params {
        for (k, v) in &other.0 {
            if self.get(k).is_none() {
                self.0.push((k.clone(), v.clone()));
            }
        }
        self
    }

    /// Re-encodes the parameters, with `offset` and `limit` replaced (for Link headers):
    /// sorted by name, each percent-encoded only where RFC 3986 requires it in a query.
    pub fn with_page(&self, offset: usize, limit: usize) -> String {
        let mut pairs: Vec<(&str, String)> = self
            .0
            .iter()
            .filter(|(k, _)| k != "offset" && k != "limit")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        pairs.push(("limit", limit.to_string()));
        pairs.push(("offset", offset.to_string()));
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode_query_part(k), encode_query_part(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-encodes what a query name or value cannot carry as is: everything but the
/// unreserved characters and the sub-delimiters that do not separate parameters.
fn encode_query_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~:@/?!$'()*,;".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_reads_options() {
        let p = Params::parse(Some(
            "type=Building&q=name%3D%3D%22a%20b%22&options=keyValues,sysAttrs&limit=5",
        ));
        assert_eq!(p.get("q"), Some("name==\"a b\""));
        assert_eq!(p.number("limit").unwrap(), Some(5));
        let o = p.options().unwrap();
        assert!(o.key_values && o.sys_attrs && !o.concise);
        assert!(Params::parse(Some("options=bogus")).options().is_err());
        assert!(Params::parse(Some("limit=-1")).number("limit").is_err());
        assert!(Params::parse(Some("attrs=a,,b")).list("attrs").is_err());
    }

    #[test]
    fn page_links_are_sorted_and_minimally_encoded() {
        let cases = [
            (
                "type=Building&idPattern=urn:ngsi-ld:B:1.*&limit=1&offset=0",
                "idPattern=urn:ngsi-ld:B:1.*&limit=1&offset=1&type=Building",
            ),
            (
                "q=a%3D%3D%22x%20y%22%26b",
                "limit=1&offset=1&q=a%3D%3D%22x%20y%22%26b",
            ),
            ("q=c%2Bd%23", "limit=1&offset=1&q=c%2Bd%23"),
        ];
        for (raw, want) in cases {
            assert_eq!(Params::parse(Some(raw)).with_page(1, 1), want, "{raw}");
        }
    }

    #[test]
    fn only_defined_parameters_pass() {
        let cases = [
            ("details=true&local=true", allowed::DISCOVERY_LIST, true),
            ("limit=5", allowed::DISCOVERY_LIST, false),
            ("details=true", allowed::DISCOVERY_ONE, false),
            ("", allowed::DISCOVERY_ONE, true),
            (
                "type=Building&invalidParams=invalidValue",
                allowed::QUERY_ENTITIES,
                false,
            ),
            ("type=Building&keep=name", allowed::PURGE, true),
        ];
        for (raw, allowed, ok) in cases {
            let r = Params::parse(Some(raw)).only(allowed);
            assert_eq!(r.is_ok(), ok, "{raw}");
            if let Err(e) = r {
                assert_eq!(e.kind, harbor_model::ErrorKind::InvalidRequest, "{raw}");
            }
        }
    }
}
