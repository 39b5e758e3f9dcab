//! Scenarios that run two brokers of the same binary side by side, differing in one setting,
//! and measure the same requests on both in one run.
//!
//! `metrics-cost`: `retrieve` and `update` with `metrics = true` and `metrics = false`.
//!
//! `auth-cost`: what authentication and access policies cost the broker per request. Two
//! brokers from the same binary run side by side in one run: one with `auth = none`, one with
//! `auth = jwt` against a token issuer in this process (discovery document and JWKS over
//! loopback, Ed25519 keys) and one access policy in force. `retrieve` and `query-type` are
//! measured on each, as a role holder, and on the second also as a subject that reads only
//! through the policy (its answers are filtered). The rows carry the broker's CPU time per
//! request; the report states the ratios.

use std::convert::Infallible;
use std::path::Path;

use anyhow::{ensure, Context as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;
use tokio::net::TcpListener;

use crate::report::Row;
use crate::scenarios::{plan, Sizes};

const AUDIENCE: &str = "infoharbor";

/// A token issuer: serves its discovery document and JWKS, signs tokens with Ed25519.
struct Issuer {
    url: String,
    key: Ed25519KeyPair,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Issuer {
    async fn start() -> anyhow::Result<Issuer> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| anyhow::anyhow!("generating an Ed25519 key"))?;
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|_| anyhow::anyhow!("reading the Ed25519 key"))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let discovery =
            Bytes::from(json!({"issuer": url, "jwks_uri": format!("{url}/jwks")}).to_string());
        let jwks = Bytes::from(
            json!({"keys": [{
                "kty": "OKP", "crv": "Ed25519", "kid": "bench", "alg": "EdDSA", "use": "sig",
                "x": B64.encode(key.public_key().as_ref()),
            }]})
            .to_string(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (discovery, jwks) = (discovery.clone(), jwks.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let body = if req.uri().path() == "/jwks" {
                            jwks.clone()
                        } else {
                            discovery.clone()
                        };
                        async move {
                            let mut resp = Response::new(Full::new(body));
                            resp.headers_mut().insert(
                                "content-type",
                                hyper::header::HeaderValue::from_static("application/json"),
                            );
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Issuer { url, key, task })
    }

    /// A token for `client` holding `roles`, valid for an hour.
    fn token(&self, client: &str, roles: &[String]) -> String {
        let now = chrono::Utc::now().timestamp();
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": "bench"});
        let claims = json!({
            "iss": self.url, "aud": AUDIENCE, "sub": client, "azp": client,
            "iat": now, "exp": now + 3600, "roles": roles,
        });
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(signature.as_ref()))
    }
}

/// Runs `auth-cost`; see the module documentation.
pub async fn run(
    binary: &Path,
    run_id: &str,
    sizes: Sizes,
    concurrency: usize,
    record: &mut dyn FnMut(Row),
) -> anyhow::Result<()> {
    let issuer = Issuer::start().await?;
    let open = crate::broker::spawn_with(binary, &[]).await?;
    let guarded = crate::broker::spawn_with(
        binary,
        &[
            "--auth",
            "jwt",
            "--oidc-issuer",
            &issuer.url,
            "--oidc-audience",
            AUDIENCE,
            "--egress-allow",
            "127.0.0.1",
        ],
    )
    .await?;
    let operator = issuer.token("bench-operator", &["operator".into()]);
    for name in ["retrieve", "query-type"] {
        let p = plan(name, sizes, run_id).context("the plan of a scenario")?;
        let tenant = format!("{run_id}-{name}");
        let reader = issuer.token("bench-reader", &[format!("reader@{tenant}")]);
        let partner = issuer.token("bench-partner", &[]);
        // One policy in force: the partner reads the seeded entities, but not all attributes.
        let admin = crate::client_as(&tenant, Some(&operator))?;
        let api = format!("{}/ngsi-ld/v1", guarded.base);
        crate::seed(&admin, &api, run_id, p.seed, &p.seed_type)
            .await
            .with_context(|| format!("seeding {name} on the broker with auth"))?;
        let policy = json!({
            "id": format!("{tenant}-partner"),
            "tenant": tenant,
            "subjects": ["client:bench-partner"],
            "actions": ["read"],
            "attrs": ["name", "availableSpotNumber", "totalSpotNumber", "location", "status", "refOperator"],
        });
        let r = admin
            .post(format!("{}/admin/v1/policies", guarded.base))
            .json(&policy)
            .send()
            .await?;
        ensure!(
            r.status().as_u16() == 201,
            "creating the policy answered {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
        let plain = crate::client(&tenant)?;
        let plain_api = format!("{}/ngsi-ld/v1", open.base);
        crate::seed(&plain, &plain_api, run_id, p.seed, &p.seed_type)
            .await
            .with_context(|| format!("seeding {name} on the broker without auth"))?;
        let runs: [(&str, &reqwest::Client, &str, u32); 3] = [
            ("auth none", &plain, &plain_api, open.child.id()),
            (
                "jwt, role",
                &crate::client_as(&tenant, Some(&reader))?,
                &api,
                guarded.child.id(),
            ),
            (
                "jwt, policy",
                &crate::client_as(&tenant, Some(&partner))?,
                &api,
                guarded.child.id(),
            ),
        ];
        for (how, c, api, pid) in runs {
            let row = crate::measure(
                c,
                api,
                Some(pid),
                &format!("{name} ({how})"),
                concurrency,
                0,
                crate::Workload {
                    requests: p.requests,
                    expect_status: p.expect_status.clone(),
                    make: p.make.clone(),
                },
            )
            .await?;
            record(row);
        }
    }
    Ok(())
}

/// Rounds of `metrics-cost`: the difference sought (3 %) is smaller than what one round
/// varies on a shared VM.
const ROUNDS: usize = 4;

/// Runs `metrics-cost`; see the module documentation.
pub async fn metrics_cost(
    binary: &Path,
    run_id: &str,
    sizes: Sizes,
    concurrency: usize,
    record: &mut dyn FnMut(Row),
) -> anyhow::Result<()> {
    let on = crate::broker::spawn_with(binary, &["--metrics", "true"]).await?;
    let off = crate::broker::spawn_with(binary, &["--metrics", "false"]).await?;
    for name in ["retrieve", "update"] {
        let p = plan(name, sizes, run_id).context("the plan of a scenario")?;
        let tenant = format!("{run_id}-{name}");
        let c = crate::client(&tenant)?;
        for (how, b) in [("metrics on", &on), ("metrics off", &off)] {
            let api = format!("{}/ngsi-ld/v1", b.base);
            crate::seed(&c, &api, run_id, p.seed, &p.seed_type)
                .await
                .with_context(|| format!("seeding {name} ({how})"))?;
        }
        // Alternate, and swap which goes first each round, so that a drift of the machine
        // during the run, or being measured first, weighs on both alike.
        for round in 0..ROUNDS {
            let mut order = [("metrics on", &on), ("metrics off", &off)];
            if round % 2 == 1 {
                order.reverse();
            }
            for (how, b) in order {
                let api = format!("{}/ngsi-ld/v1", b.base);
                let row = crate::measure(
                    &c,
                    &api,
                    Some(b.child.id()),
                    &format!("{name} ({how}, round {})", round + 1),
                    concurrency,
                    0,
                    crate::Workload {
                        requests: p.requests,
                        expect_status: p.expect_status.clone(),
                        make: p.make.clone(),
                    },
                )
                .await?;
                record(row);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[tokio::test]
    async fn tokens_verify_with_the_published_key() {
        let issuer = Issuer::start().await.unwrap();
        let token = issuer.token("c", &["reader@t".into()]);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ED25519,
            issuer.key.public_key().as_ref().to_vec(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(signed.as_bytes(), &B64.decode(parts[2]).unwrap())
            .expect("the signature verifies");
        let claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], issuer.url.as_str());
        assert_eq!(claims["roles"][0], "reader@t");
    }
}
