//! Behaviours every operation shares (6.3): preconditions, negotiation, tenant echo, unknown
//! parameters; and the operations of discovery (5.7.5 – 5.7.10) and purge (5.6.21).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use super::{app, call, parking, JSON};

/// Sends a JSON body without stating its length; returns the status and the body length.
async fn without_length(
    app: &axum::Router,
    method: &str,
    uri: &str,
    tenant: Option<&str>,
) -> (StatusCode, usize) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(t) = tenant {
        req = req.header("NGSILD-Tenant", t);
    }
    // No Content-Length header, as a chunked upload sends it.
    let body = Body::from(r#"{"id":"urn:ngsi-ld:T:411","type":"T"}"#);
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.len())
}

#[tokio::test]
async fn body_requests_without_content_length_get_a_bare_411() {
    let app = app("length-required");
    let cases = [
        ("POST", "/ngsi-ld/v1/entities", None),
        (
            "PATCH",
            "/ngsi-ld/v1/entities/urn:ngsi-ld:T:411/attrs",
            None,
        ),
        ("PUT", "/ngsi-ld/v1/entities/urn:ngsi-ld:T:411", None),
        // decided before the (unknown) tenant is looked up
        ("POST", "/ngsi-ld/v1/entities", Some("nosuchtenant")),
    ];
    for (method, uri, tenant) in cases {
        let (status, len) = without_length(&app, method, uri, tenant).await;
        assert_eq!(status, StatusCode::LENGTH_REQUIRED, "{method} {uri}");
        assert_eq!(len, 0, "{method} {uri}: 411 carries no body");
    }
    let (s, _, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/entities?type=T",
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "GET needs no Content-Length");
}

#[tokio::test]
async fn the_tenant_is_echoed_on_success_and_error() {
    let app = app("tenant-echo");
    let tenant = [("NGSILD-Tenant", "echoed")];
    let (s, body, h) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/entities?type=T",
        None,
        vec![],
        &tenant,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        body["type"],
        "https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant"
    );
    assert_eq!(h["NGSILD-Tenant"], "echoed");
    let id = "urn:ngsi-ld:OffStreetParking:echo";
    let body = parking(id, 1).to_string().into_bytes();
    let (s, _, _) = call(&app, "POST", "/ngsi-ld/v1/entities", JSON, body, &tenant).await;
    assert_eq!(s, StatusCode::CREATED);
    let uri = format!("/ngsi-ld/v1/entities/{id}");
    let (s, _, h) = call(&app, "GET", &uri, None, vec![], &tenant).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["NGSILD-Tenant"], "echoed");
    let (s, _, h) = call(&app, "GET", &uri, None, vec![], &[]).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "the default tenant does not see it"
    );
    assert!(h.get("NGSILD-Tenant").is_none());
}

#[tokio::test]
async fn accept_follows_the_6_3_4_list_order_and_weights() {
    let app = app("accept");
    let id = "urn:ngsi-ld:OffStreetParking:accept";
    let body = parking(id, 1).to_string().into_bytes();
    let (s, _, _) = call(&app, "POST", "/ngsi-ld/v1/entities", JSON, body, &[]).await;
    assert_eq!(s, StatusCode::CREATED);
    let uri = format!("/ngsi-ld/v1/entities/{id}");
    let cases = [
        (
            "application/ld+json, application/json",
            200,
            "application/json",
        ),
        (
            "application/geo+json, application/json",
            200,
            "application/json",
        ),
        ("application/json;q=0, */*", 200, "application/ld+json"),
        (
            "application/ld+json;q=notanumber",
            200,
            "application/ld+json",
        ),
        ("application/geo+json", 200, "application/geo+json"),
        ("text/html", 406, "application/json"),
    ];
    for (accept, status, media) in cases {
        let (s, _, h) = call(&app, "GET", &uri, None, vec![], &[("accept", accept)]).await;
        assert_eq!(s.as_u16(), status, "{accept}");
        assert_eq!(h["content-type"], media, "{accept}");
    }
    // GeoJSON embeds the @context unless Prefer: body=json moves it to the Link header.
    let geo = [("accept", "application/geo+json")];
    let (_, body, h) = call(&app, "GET", &uri, None, vec![], &geo).await;
    assert!(body.get("@context").is_some() && h.get("link").is_none());
    let prefer = [("accept", "application/geo+json"), ("prefer", "body=json")];
    let (_, body, h) = call(&app, "GET", &uri, None, vec![], &prefer).await;
    assert!(body.get("@context").is_none() && h.get("link").is_some());
}

#[tokio::test]
async fn undefined_query_parameters_are_invalid_requests() {
    let app = app("params");
    let body = parking("urn:ngsi-ld:OffStreetParking:p", 1)
        .to_string()
        .into_bytes();
    let (s, _, _) = call(&app, "POST", "/ngsi-ld/v1/entities", JSON, body, &[]).await;
    assert_eq!(s, StatusCode::CREATED);
    let cases = [
        (
            "GET",
            "/ngsi-ld/v1/entities?type=OffStreetParking&invalidParams=x",
            400,
        ),
        ("GET", "/ngsi-ld/v1/types?invalidParams=x", 400),
        (
            "GET",
            "/ngsi-ld/v1/types/OffStreetParking?details=true",
            400,
        ),
        ("GET", "/ngsi-ld/v1/attributes?limit=5", 400),
        ("GET", "/ngsi-ld/v1/attributes/name?details=true", 400),
        ("DELETE", "/ngsi-ld/v1/entities?invalidParams=x", 400),
        ("GET", "/ngsi-ld/v1/types?details=true", 200),
        ("GET", "/ngsi-ld/v1/types/OffStreetParking?local=true", 200),
    ];
    for (method, uri, status) in cases {
        let (s, body, _) = call(&app, method, uri, None, vec![], &[]).await;
        assert_eq!(s.as_u16(), status, "{method} {uri}: {body}");
        if status == 400 {
            assert_eq!(
                body["type"], "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest",
                "{uri}"
            );
        }
    }
}

#[tokio::test]
async fn attribute_details_list_names_and_types_only() {
    let app = app("attr-details");
    let body = parking("urn:ngsi-ld:OffStreetParking:d", 1)
        .to_string()
        .into_bytes();
    call(&app, "POST", "/ngsi-ld/v1/entities", JSON, body, &[]).await;
    let (_, list, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/attributes?details=true",
        None,
        vec![],
        &[],
    )
    .await;
    let name = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["attributeName"] == "name")
        .unwrap();
    assert_eq!(
        name,
        &json!({
            "id": "https://uri.etsi.org/ngsi-ld/default-context/name",
            "type": "Attribute",
            "attributeName": "name",
            "typeNames": ["OffStreetParking"],
        })
    );
    let (_, one, _) = call(
        &app,
        "GET",
        "/ngsi-ld/v1/attributes/name",
        None,
        vec![],
        &[],
    )
    .await;
    assert_eq!(one["attributeCount"], 1);
    assert_eq!(one["attributeTypes"], json!(["Property"]));
}

#[tokio::test]
async fn purge_needs_a_narrow_selection_and_keeps_or_drops() {
    let app = app("purge");
    for (id, free) in [
        ("urn:ngsi-ld:OffStreetParking:a", 1),
        ("urn:ngsi-ld:OffStreetParking:b", 2),
    ] {
        let body = parking(id, free).to_string().into_bytes();
        let (s, _, _) = call(&app, "POST", "/ngsi-ld/v1/entities", JSON, body, &[]).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    // refused before anything is deleted
    let refused = [
        "id=urn:ngsi-ld:OffStreetParking:a",
        "idPattern=.*",
        "attrs=createdAt",
        "q=modifiedAt%3E%222020-01-01T00:00:00Z%22",
        "type=OffStreetParking&q=refOperator%7Bname%7D%3D%3D%22x%22",
        "type=OffStreetParking&attrs=refOperator%7Bname%7D",
        "type=OffStreetParking&keep=name&drop=location",
    ];
    for query in refused {
        let (s, body, _) = call(
            &app,
            "DELETE",
            &format!("/ngsi-ld/v1/entities?{query}"),
            None,
            vec![],
            &[],
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(
            body["type"], "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
            "{query}"
        );
    }
    let entity = |id: &'static str| {
        let app = app.clone();
        async move {
            let (s, e, _) = call(
                &app,
                "GET",
                &format!("/ngsi-ld/v1/entities/{id}"),
                None,
                vec![],
                &[],
            )
            .await;
            (s, e)
        }
    };
    let (s, e) = entity("urn:ngsi-ld:OffStreetParking:a").await;
    assert_eq!(s, StatusCode::OK);
    assert!(e.get("name").is_some());

    let purge = |query: &'static str| {
        let app = app.clone();
        async move {
            call(
                &app,
                "DELETE",
                &format!("/ngsi-ld/v1/entities?{query}"),
                None,
                vec![],
                &[],
            )
            .await
            .0
        }
    };
    assert_eq!(
        purge("type=OffStreetParking&drop=name").await,
        StatusCode::NO_CONTENT
    );
    let (_, e) = entity("urn:ngsi-ld:OffStreetParking:a").await;
    assert!(e.get("name").is_none() && e.get("location").is_some());
    assert_eq!(
        purge("type=OffStreetParking&keep=location").await,
        StatusCode::NO_CONTENT
    );
    let (_, e) = entity("urn:ngsi-ld:OffStreetParking:b").await;
    assert!(e.get("availableSpotNumber").is_none() && e.get("location").is_some());
    assert_eq!(
        purge("q=availableSpotNumber%3D%3D1").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        entity("urn:ngsi-ld:OffStreetParking:a").await.0,
        StatusCode::OK,
        "no longer has the attribute"
    );
    assert_eq!(purge("local=true").await, StatusCode::NO_CONTENT);
    for id in [
        "urn:ngsi-ld:OffStreetParking:a",
        "urn:ngsi-ld:OffStreetParking:b",
    ] {
        assert_eq!(entity(id).await.0, StatusCode::NOT_FOUND, "{id}");
    }
}

#[tokio::test]
async fn hosting_a_context_needs_an_at_context_member() {
    let app = app("host-context");
    let cases = [
        (
            json!({"A1": "urn:ngsi-ld:attributes:A1"}),
            400,
            Some("InvalidRequest"),
        ),
        (json!({"@context": 42}), 400, Some("BadRequestData")),
        (
            json!({"@context": {"A1": "urn:ngsi-ld:attributes:A1"}}),
            201,
            None,
        ),
    ];
    for (body, status, kind) in cases {
        let bytes = body.to_string().into_bytes();
        let (s, problem, _) =
            call(&app, "POST", "/ngsi-ld/v1/jsonldContexts", JSON, bytes, &[]).await;
        assert_eq!(s.as_u16(), status, "{body}");
        if let Some(kind) = kind {
            let want = format!("https://uri.etsi.org/ngsi-ld/errors/{kind}");
            assert_eq!(problem["type"], want.as_str(), "{body}");
        }
    }
}

#[tokio::test]
async fn source_identity_names_the_broker_and_each_tenant() {
    let app = app("source-identity");
    let uri = "/ngsi-ld/v1/info/sourceIdentity";
    let (status, default, _) = call(&app, "GET", uri, None, vec![], &[]).await;
    assert_eq!(status, StatusCode::OK, "{default}");
    assert_eq!(default["type"], "ContextSourceIdentity");
    assert!(default["id"].as_str().unwrap().starts_with("urn:"));
    assert!(default["contextSourceUptime"]
        .as_str()
        .unwrap()
        .starts_with("PT"));
    assert!(default["contextSourceTimeAt"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let alias = |t: &'static str| {
        let app = app.clone();
        async move {
            let (status, v, headers) =
                call(&app, "GET", uri, None, vec![], &[("NGSILD-Tenant", t)]).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers["NGSILD-Tenant"], t, "the tenant is echoed");
            v["contextSourceAlias"].as_str().unwrap().to_string()
        }
    };
    let a = alias("city-a").await;
    assert_ne!(a, default["contextSourceAlias"].as_str().unwrap());
    assert_ne!(a, alias("city-b").await);
    assert_eq!(a, alias("city-a").await, "an alias is stable");
}
