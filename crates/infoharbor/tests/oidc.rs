//! Bearer tokens of a real OpenID Connect provider on the real binary (issue 10). The provider is
//! oidc-provider, run by `tests/oidc/provider.mjs`: tokens it issues by client credentials are
//! accepted in each algorithm the broker takes (RS256, ES256, EdDSA) with the grants of the
//! configured roles claim, and every kind of bad token `tests/oidc/mint.mjs` makes is refused
//! with 401, a `WWW-Authenticate: Bearer` challenge and a ProblemDetails body.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use support::{client, Broker, TYPE};
use tokio::io::AsyncBufReadExt as _;

/// The tenant the provider's clients hold grants in.
const TENANT: &str = "sg-lta";

/// Kinds of bad token the table must hold, whatever else mint.mjs adds.
const REQUIRED_KINDS: &[&str] = &[
    "wrong-key",
    "unknown-kid",
    "expired",
    "expired-beyond-skew",
    "not-yet-valid",
    "wrong-audience",
    "wrong-issuer",
    "alg-none",
    "hs256-public-key-pem",
    "tampered-payload",
    "signature-stripped",
    "no-kid-several-rsa-keys",
    "es256-header-rsa-kid",
    "crit-unknown-extension",
    "jku-to-another-jwks",
    "malformed-two-parts",
    "malformed-bad-base64",
    "empty-bearer",
];

/// The provider process; killed when dropped, and it exits by itself when its stdin closes.
struct Provider {
    _child: tokio::process::Child,
    issuer: String,
    audience: String,
}

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

impl Provider {
    /// Starts the provider; its stderr goes to `log_dir`.
    async fn start(log_dir: &Path) -> Provider {
        let dir = script_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir()
                && dir.join("node_modules/jose").is_dir(),
            "{}/node_modules is missing: run `npm ci --no-audit --no-fund` in \
             crates/infoharbor/tests/oidc (.ci/run does it in ensure_node_packages)",
            dir.display()
        );
        let stderr_path = log_dir.join("oidc-provider.stderr");
        let mut child = tokio::process::Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).expect("create the provider's stderr file"))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `node provider.mjs` (Node.js 20 or later is needed): {e}")
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
        let Ok(Ok(Some(line))) = line else {
            panic!(
                "the OIDC provider did not print its address ({line:?}); its stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        };
        let started: Value =
            serde_json::from_str(&line).expect("the provider's first line is JSON");
        Provider {
            _child: child,
            issuer: started["issuer"].as_str().unwrap().to_string(),
            audience: started["audience"].as_str().unwrap().to_string(),
        }
    }

    /// An access token for `client` by client credentials, for `resource`.
    async fn token(&self, client_id: &str, resource: &str) -> String {
        let body = format!(
            "grant_type=client_credentials&client_id={client_id}&client_secret={client_id}-secret\
             &scope=ngsi-ld&resource={}",
            resource.replace(':', "%3A")
        );
        let r = client()
            .post(format!("{}/token", self.issuer))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("the token endpoint answers");
        let status = r.status();
        let answer: Value = r.json().await.expect("the token answer is JSON");
        assert_eq!(status, 200, "token for {client_id} at {resource}: {answer}");
        assert_eq!(answer["token_type"], "Bearer", "{answer}");
        answer["access_token"].as_str().unwrap().to_string()
    }

    async fn get(&self, path: &str) -> Value {
        client()
            .get(format!("{}{path}", self.issuer))
            .send()
            .await
            .expect("the provider answers")
            .json()
            .await
            .expect("the provider answers JSON")
    }

    /// Creates the tenant the reads of the tests address, with a writer's token.
    async fn seed(&self, broker: &Broker) {
        let writer = self.token("writer", "urn:infoharbor:rs256").await;
        let (status, _, body) = send(
            reqwest::Method::POST,
            &format!("{}/ngsi-ld/v1/entities", broker.base),
            Some(TENANT),
            Some(&writer),
            Some(entity(&format!("urn:ngsi-ld:{TYPE}:seed"))),
        )
        .await;
        assert_eq!(status, 201, "seeding tenant {TENANT}: {body}");
    }

    async fn jwks_fetches(&self) -> (u64, u64) {
        let counts = self.get("/test/jwks-fetches").await;
        (
            counts["jwks"].as_u64().unwrap(),
            counts["decoy"].as_u64().unwrap(),
        )
    }

    async fn start_broker(&self, work: &Path, n: usize, auth: &str) -> Broker {
        Broker::start_with(
            &work.join(format!("data-{n}")),
            work,
            n,
            &[
                "--auth",
                auth,
                "--oidc-issuer",
                &self.issuer,
                "--oidc-audience",
                &self.audience,
                "--oidc-roles-claim",
                "realm_access.roles",
            ],
        )
        .await
    }
}

/// The `alg` of a token's header.
fn alg_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["alg"]
        .as_str()
        .unwrap()
        .to_string()
}

/// One request with `token` as bearer: status, `WWW-Authenticate` and body.
async fn send(
    method: reqwest::Method,
    url: &str,
    tenant: Option<&str>,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let mut req = client().request(method, url);
    if let Some(t) = tenant {
        req = req.header("NGSILD-Tenant", t);
    }
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("the broker answers");
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let text = r.text().await.unwrap_or_default();
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn entity(id: &str) -> Value {
    json!({"id": id, "type": TYPE, "occupancy": {"type": "Property", "value": 3}})
}

fn query_url(broker: &Broker) -> String {
    format!("{}/ngsi-ld/v1/entities?type={TYPE}", broker.base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_tokens_are_accepted_with_the_grants_of_their_roles_claim() {
    let work = tempfile::tempdir().unwrap();
    let provider = Provider::start(work.path()).await;
    let broker = provider.start_broker(work.path(), 0, "jwt").await;
    let entities = format!("{}/ngsi-ld/v1/entities", broker.base);
    use reqwest::Method as M;
    for (resource, alg) in [
        ("urn:infoharbor:rs256", "RS256"),
        ("urn:infoharbor:es256", "ES256"),
        ("urn:infoharbor:eddsa", "EdDSA"),
    ] {
        let writer = provider.token("writer", resource).await;
        let reader = provider.token("reader", resource).await;
        assert_eq!(
            alg_of(&writer),
            alg,
            "the provider signs {resource} with {alg}"
        );
        let id = format!("urn:ngsi-ld:{TYPE}:{alg}");
        let (status, _, body) = send(
            M::POST,
            &entities,
            Some(TENANT),
            Some(&writer),
            Some(entity(&id)),
        )
        .await;
        assert_eq!(status, 201, "{alg}: a writer@{TENANT} creates: {body}");
        let (status, _, body) = send(
            M::GET,
            &format!("{entities}/{id}"),
            Some(TENANT),
            Some(&reader),
            None,
        )
        .await;
        assert_eq!(status, 200, "{alg}: a reader@{TENANT} reads: {body}");
        assert_eq!(body["id"], id.as_str());
        let (status, challenge, body) = send(
            M::POST,
            &entities,
            Some(TENANT),
            Some(&reader),
            Some(entity(&format!("{id}-2"))),
        )
        .await;
        assert_eq!(status, 403, "{alg}: a reader may not write: {body}");
        assert_eq!(challenge, None, "403 carries no challenge");
        assert_eq!(body["status"], 403, "{body}");
        let detail = body["detail"].as_str().unwrap_or("");
        assert!(detail.contains("may not write"), "{detail}");
        assert!(detail.contains(TENANT), "{detail}");
    }
    let rs = "urn:infoharbor:rs256";
    let reader = provider.token("reader", rs).await;
    let (status, _, body) = send(M::GET, &query_url(&broker), None, Some(&reader), None).await;
    assert_eq!(
        status, 403,
        "reader@{TENANT} holds nothing in the default tenant: {body}"
    );
    let nobody = provider.token("nobody", rs).await;
    let (status, _, body) = send(
        M::GET,
        &query_url(&broker),
        Some(TENANT),
        Some(&nobody),
        None,
    )
    .await;
    assert_eq!(
        status, 403,
        "a token without grants proves who, not what: {body}"
    );
    let metrics = format!("{}/admin/v1/keys", broker.base);
    let operator = provider.token("operator", rs).await;
    let (status, _, _) = send(M::GET, &metrics, None, Some(&operator), None).await;
    assert_eq!(status, 200, "an operator lists keys");
    let (status, _, _) = send(M::GET, &metrics, None, Some(&reader), None).await;
    assert_eq!(status, 403, "a reader does not");
    let elsewhere = provider.token("operator", "urn:other:api").await;
    let (status, challenge, body) = send(M::GET, &metrics, None, Some(&elsewhere), None).await;
    assert_eq!(
        status, 401,
        "a token of the same provider for another audience: {body}"
    );
    assert!(
        challenge.as_deref().unwrap_or("").starts_with("Bearer"),
        "{challenge:?}"
    );
    let (status, challenge, _) = send(M::GET, &query_url(&broker), Some(TENANT), None, None).await;
    assert_eq!(status, 401, "no credential");
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"infoharbor\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_naming_a_partner_reads_what_the_partner_policy_shares() {
    let work = tempfile::tempdir().unwrap();
    let provider = Provider::start(work.path()).await;
    let broker = provider.start_broker(work.path(), 0, "jwt").await;
    use reqwest::Method as M;
    let rs = "urn:infoharbor:rs256";
    let operator = provider.token("operator", rs).await;
    let partner = provider.token("kl-dashboard", rs).await;
    let entities = format!("{}/ngsi-ld/v1/entities", broker.base);
    let id = format!("urn:ngsi-ld:{TYPE}:shared");
    let mut shared = entity(&id);
    shared["secret"] = json!({"type": "Property", "value": "gate code"});
    let (status, _, body) = send(
        M::POST,
        &entities,
        Some(TENANT),
        Some(&operator),
        Some(shared),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let one = format!("{entities}/{id}");
    let (status, _, body) = send(M::GET, &one, Some(TENANT), Some(&partner), None).await;
    assert_eq!(status, 403, "no role and no policy yet: {body}");
    let (status, _, body) = send(
        M::POST,
        &format!("{}/admin/v1/policies", broker.base),
        None,
        Some(&operator),
        Some(json!({
            "id": "sg-occupancy-to-kl", "tenant": TENANT,
            "subjects": ["partner:kl-city"], "actions": ["read"],
            "entities": [{"type": [TYPE]}], "attrs": ["occupancy"]
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = send(M::GET, &one, Some(TENANT), Some(&partner), None).await;
    assert_eq!(
        status, 200,
        "the provider's partner claim names kl-city: {body}"
    );
    assert_eq!(body["occupancy"]["value"], 3, "{body}");
    assert!(body.get("secret").is_none(), "not shared: {body}");
    let (status, _, body) = send(
        M::GET,
        &one,
        Some(TENANT),
        Some(&provider.token("nobody", rs).await),
        None,
    )
    .await;
    assert_eq!(status, 403, "a token naming no partner: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_api_keys_work_side_by_side_with_jwt_and_apikey() {
    let work = tempfile::tempdir().unwrap();
    let provider = Provider::start(work.path()).await;
    let broker = provider.start_broker(work.path(), 0, "jwt+apikey").await;
    use reqwest::Method as M;
    let rs = "urn:infoharbor:rs256";
    let operator = provider.token("operator", rs).await;
    let writer = provider.token("writer", "urn:infoharbor:es256").await;
    let entities = format!("{}/ngsi-ld/v1/entities", broker.base);
    let id = format!("urn:ngsi-ld:{TYPE}:side-by-side");
    let (status, _, body) = send(
        M::POST,
        &entities,
        Some(TENANT),
        Some(&writer),
        Some(entity(&id)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let keys = format!("{}/admin/v1/keys", broker.base);
    let (status, _, created) = send(
        M::POST,
        &keys,
        None,
        Some(&operator),
        Some(json!({"name": "parking sensors", "grants": [format!("reader@{TENANT}")]})),
    )
    .await;
    assert_eq!(status, 201, "an operator's token creates keys: {created}");
    assert_eq!(created["createdBy"], "operator", "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let read = format!("{entities}/{id}");
    let by_header = client()
        .get(&read)
        .header("NGSILD-Tenant", TENANT)
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200, "the key in X-API-Key");
    let (status, _, _) = send(M::GET, &read, Some(TENANT), Some(&key), None).await;
    assert_eq!(status, 200, "the key as a bearer");
    let reader = provider.token("reader", "urn:infoharbor:eddsa").await;
    let (status, _, _) = send(M::GET, &read, Some(TENANT), Some(&reader), None).await;
    assert_eq!(status, 200, "a token beside it");
    let (status, _, _) = send(M::GET, &keys, None, Some(&key), None).await;
    assert_eq!(status, 403, "a reader key lists no keys");
    let key_id = created["id"].as_str().unwrap();
    let (status, _, body) = send(
        M::DELETE,
        &format!("{keys}/{key_id}"),
        None,
        Some(&operator),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, challenge, body) = send(M::GET, &read, Some(TENANT), Some(&key), None).await;
    assert_eq!(status, 401, "a revoked key: {body}");
    assert!(challenge.unwrap_or_default().starts_with("Bearer"));
}

/// Sends every bad token of the provider's table to `broker`; returns what went wrong, by kind.
async fn refusals(provider: &Provider, broker: &Broker) -> (Vec<String>, usize) {
    let minted = provider.get("/test/bad-tokens").await;
    let minted = minted
        .as_array()
        .unwrap_or_else(|| panic!("the provider minted no tokens: {minted}"));
    let url = query_url(broker);
    let mut wrong = Vec::new();
    let mut kinds = Vec::new();
    for item in minted {
        let kind = item["kind"].as_str().unwrap();
        let token = item["token"].as_str().unwrap();
        let (status, challenge, body) =
            send(reqwest::Method::GET, &url, Some(TENANT), Some(token), None).await;
        if kind.starts_with("control-") {
            // The forger signs correctly: the same hand-made signing, with nothing wrong, passes.
            if status != 200 {
                wrong.push(format!("{kind}: want 200, got {status} {body}"));
            }
            continue;
        }
        kinds.push(kind.to_string());
        if status != 401 {
            wrong.push(format!("{kind}: want 401, got {status} {body}"));
            continue;
        }
        if !challenge.as_deref().unwrap_or("").starts_with("Bearer ") {
            wrong.push(format!("{kind}: WWW-Authenticate is {challenge:?}"));
        }
        let problem = body["type"].is_string()
            && body["title"].is_string()
            && body["status"] == 401
            && body["detail"].as_str().is_some_and(|d| !d.is_empty());
        if !problem {
            wrong.push(format!("{kind}: the body is no ProblemDetails: {body}"));
        }
    }
    let missing: Vec<&&str> = REQUIRED_KINDS
        .iter()
        .filter(|k| !kinds.iter().any(|got| got == *k))
        .collect();
    assert!(missing.is_empty(), "mint.mjs lost kinds {missing:?}");
    (wrong, kinds.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_token_is_refused_with_401() {
    let work = tempfile::tempdir().unwrap();
    let provider = Provider::start(work.path()).await;
    for (n, auth) in ["jwt", "jwt+apikey"].into_iter().enumerate() {
        let broker = provider.start_broker(work.path(), n, auth).await;
        provider.seed(&broker).await;
        let (wrong, kinds) = refusals(&provider, &broker).await;
        assert!(kinds >= 12, "only {kinds} kinds of bad token");
        assert!(
            wrong.is_empty(),
            "auth = {auth}: {} of {kinds} kinds not refused as they should be:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        println!("auth = {auth}: {kinds} kinds of bad token, all refused with 401");
    }
    let (_, decoy) = provider.jwks_fetches().await;
    assert_eq!(decoy, 0, "a token's jku is never followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_costs_one_jwks_fetch_per_interval() {
    let work = tempfile::tempdir().unwrap();
    let provider = Provider::start(work.path()).await;
    let broker = provider.start_broker(work.path(), 0, "jwt").await;
    let started = std::time::Instant::now();
    provider.seed(&broker).await;
    let reader = provider.token("reader", "urn:infoharbor:rs256").await;
    let url = query_url(&broker);
    let (status, _, body) = send(
        reqwest::Method::GET,
        &url,
        Some(TENANT),
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(status, 200, "the keys are fetched: {body}");
    let flood = provider.get("/test/unknown-kid-tokens?n=40").await;
    let flood: Vec<String> = flood
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    // Past the refetch interval since the keys were fetched at start, the first made-up kid
    // makes the broker look again (a rotated key would be found so); the others do not.
    tokio::time::sleep(Duration::from_secs(11).saturating_sub(started.elapsed())).await;
    let (before, _) = provider.jwks_fetches().await;
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    for token in &flood {
        let (status, _, _) =
            send(reqwest::Method::GET, &url, Some(TENANT), Some(token), None).await;
        statuses.push(status);
    }
    let (after, _) = provider.jwks_fetches().await;
    assert!(
        statuses.iter().all(|s| *s == 401),
        "every made-up kid is refused: {statuses:?}"
    );
    // The broker fetches again at most once per 10 s for unknown kids.
    let allowed = 1 + started.elapsed().as_secs() / 10;
    assert!(
        (1..=allowed).contains(&(after - before)),
        "{} made-up kids caused {} JWKS fetches in {:?}; want 1 to {allowed}",
        flood.len(),
        after - before,
        started.elapsed()
    );
    println!(
        "{} made-up kids in {:?}: {} JWKS fetch(es)",
        flood.len(),
        started.elapsed(),
        after - before
    );
}
