//! Bearer tokens from any OpenID Connect provider (Keycloak, Authentik, Azure AD, …).
//!
//! The provider's keys come from its discovery document (`/.well-known/openid-configuration`,
//! whose `issuer` must be the configured one) and its JWKS, fetched through the broker's egress
//! wall and cached. A token naming a `kid` the cache does not know makes the broker fetch the
//! JWKS again, at most once per `refetch_interval`, so rotated keys are picked up and a flood of
//! made-up `kid`s costs one fetch.
//!
//! Accepted: RS256, ES256 and EdDSA, each only with a key of its own family; `exp`, `iss` and
//! `aud` required, `exp` and `nbf` checked with a small clock skew. Refused: `alg: none`, every
//! HMAC algorithm (a public key used as an HMAC secret is the classic forgery), symmetric keys
//! in the JWKS, a token without `kid` when the JWKS holds several keys it could mean, and a
//! header with `crit` extensions (none is understood). A JWKS key this verifier cannot read is
//! skipped, not a reason to distrust the others.
//!
//! A verified token is remembered until it expires (bounded), so that a client sending the same
//! token again costs a map lookup, not a signature check.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;

use crate::grants::Grants;
use crate::{AuthError, Identity, Via};

/// Fetches a JSON document over HTTP(S); the broker passes its egress-walled client.
#[async_trait]
pub trait JsonFetch: Send + Sync {
    async fn get_json(&self, url: &str) -> Result<serde_json::Value, String>;
}

/// How tokens are checked.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// `iss` of every token, and where discovery starts.
    pub issuer: String,
    /// Must be among the token's `aud`.
    pub audience: String,
    /// Dot path of the claim holding the grants, e.g. `roles` or `realm_access.roles`.
    pub roles_claim: String,
    /// Dot path of the claim naming the partner the token's holder acts for (`partner:`
    /// policies); empty: tokens name no partner.
    pub partner_claim: String,
    /// Tolerance for `exp` and `nbf`.
    pub clock_skew: Duration,
    /// The JWKS URL, when discovery is not to be used.
    pub jwks_url: Option<String>,
    /// Shortest time between two JWKS fetches caused by unknown `kid`s.
    pub refetch_interval: Duration,
}

/// Verified tokens remembered at most.
const MAX_REMEMBERED: usize = 10_000;
/// Longest token accepted; real ones are a few KiB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Keys are refreshed this often even when no unknown `kid` asks for it.
const REFRESH_EVERY: Duration = Duration::from_secs(600);

struct ProviderKey {
    kid: Option<String>,
    /// The algorithm the JWK declares, if any.
    alg: Option<Algorithm>,
    family: Family,
    key: DecodingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
    Ed,
}

fn family_of(alg: Algorithm) -> Option<Family> {
    match alg {
        Algorithm::RS256 => Some(Family::Rsa),
        Algorithm::ES256 => Some(Family::Ec),
        Algorithm::EdDSA => Some(Family::Ed),
        _ => None,
    }
}

#[derive(Default)]
struct Keys {
    jwks_url: Option<String>,
    keys: Vec<ProviderKey>,
    fetched: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// Checks bearer tokens of one provider.
pub struct JwtVerifier {
    cfg: OidcConfig,
    fetch: Arc<dyn JsonFetch>,
    keys: tokio::sync::RwLock<Keys>,
    /// Serialises fetches.
    fetching: tokio::sync::Mutex<()>,
    remembered: Mutex<HashMap<String, (Identity, i64)>>,
}

impl JwtVerifier {
    pub fn new(cfg: OidcConfig, fetch: Arc<dyn JsonFetch>) -> Self {
        JwtVerifier {
            keys: tokio::sync::RwLock::new(Keys {
                jwks_url: cfg.jwks_url.clone(),
                ..Keys::default()
            }),
            cfg,
            fetch,
            fetching: tokio::sync::Mutex::new(()),
            remembered: Mutex::new(HashMap::new()),
        }
    }

    /// Fetches the provider's keys now (at start); an error is worth logging, not fatal: the
    /// first token will try again.
    pub async fn prefetch(&self) -> Result<usize, String> {
        self.refetch(true).await
    }

    /// Fetches the JWKS (after discovery when needed), unless a fetch happened within the
    /// refetch interval and `force` is false. Returns how many usable keys there are.
    async fn refetch(&self, force: bool) -> Result<usize, String> {
        let _one = self.fetching.lock().await;
        {
            let keys = self.keys.read().await;
            if !force
                && keys
                    .last_attempt
                    .is_some_and(|t| t.elapsed() < self.cfg.refetch_interval)
            {
                return Ok(keys.keys.len());
            }
        }
        self.keys.write().await.last_attempt = Some(Instant::now());
        let jwks_url = match self.keys.read().await.jwks_url.clone() {
            Some(u) => u,
            None => self.discover().await?,
        };
        let doc = self.fetch.get_json(&jwks_url).await?;
        let Some(listed) = doc.get("keys").and_then(serde_json::Value::as_array) else {
            return Err(format!("the JWKS at {jwks_url} has no \"keys\" list"));
        };
        // Each key on its own: one that this verifier cannot read (an algorithm or curve it
        // does not know, such as an ES512 or X25519 key) must not hide the others.
        let keys: Vec<ProviderKey> = listed
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .filter_map(|k| provider_key(&k))
            .collect();
        if keys.is_empty() {
            return Err(format!(
                "the JWKS at {jwks_url} holds no RSA, EC P-256 or Ed25519 signing key"
            ));
        }
        let n = keys.len();
        let mut held = self.keys.write().await;
        held.jwks_url = Some(jwks_url);
        held.keys = keys;
        held.fetched = Some(Instant::now());
        Ok(n)
    }

    async fn discover(&self) -> Result<String, String> {
        let issuer = self.cfg.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let doc = self.fetch.get_json(&url).await?;
        let stated = doc.get("issuer").and_then(|v| v.as_str()).unwrap_or("");
        if stated.trim_end_matches('/') != issuer {
            return Err(format!(
                "the discovery document at {url} names issuer {stated:?}, not the configured {:?}",
                self.cfg.issuer
            ));
        }
        doc.get("jwks_uri")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("the discovery document at {url} has no jwks_uri"))
    }

    /// The identity a token proves.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let now = chrono::Utc::now().timestamp();
        if let Some((identity, exp)) = self.remembered.lock().get(token) {
            if *exp + self.cfg.clock_skew.as_secs() as i64 > now {
                return Ok(identity.clone());
            }
        }
        let rejected = |why: String| AuthError::Rejected(why);
        if token.len() > MAX_TOKEN_BYTES {
            return Err(rejected(format!(
                "the token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            rejected(format!(
                "the token's header cannot be read ({e}); alg \"none\" is never accepted"
            ))
        })?;
        if let Some(why) = critical_extensions(token) {
            return Err(rejected(why));
        }
        let Some(family) = family_of(header.alg) else {
            return Err(rejected(format!(
                "tokens signed with {:?} are not accepted; use RS256, ES256 or EdDSA",
                header.alg
            )));
        };
        if self
            .keys
            .read()
            .await
            .fetched
            .is_none_or(|t| t.elapsed() > REFRESH_EVERY)
        {
            if let Err(e) = self.refetch(false).await {
                tracing::warn!(error = %e, "cannot fetch the identity provider's keys");
            }
        }
        let claims = match self.check_with_keys(token, &header, family).await {
            Err(KeyLookup::Unknown) => {
                // Rotated keys: fetch once more (rate-limited) and look again.
                if let Err(e) = self.refetch(false).await {
                    return Err(AuthError::Unavailable(format!(
                        "the token cannot be checked now: {e}"
                    )));
                }
                self.check_with_keys(token, &header, family).await
            }
            other => other,
        };
        let claims = match claims {
            Ok(c) => c,
            Err(KeyLookup::Unknown) => return Err(match &header.kid {
                Some(kid) => rejected(format!(
                    "the token's kid {kid:?} is not among the provider's keys"
                )),
                None => rejected(
                    "the token has no kid and no single key of the provider matches its algorithm"
                        .into(),
                ),
            }),
            Err(KeyLookup::Ambiguous) => {
                return Err(rejected(
                    "the token has no kid and the provider has several keys it could mean".into(),
                ))
            }
            Err(KeyLookup::Invalid(why)) => return Err(rejected(why)),
        };
        let identity = self.identity(&claims);
        let exp = claims.get("exp").and_then(|v| v.as_i64()).unwrap_or(now);
        let mut remembered = self.remembered.lock();
        if remembered.len() >= MAX_REMEMBERED {
            remembered.retain(|_, (_, e)| *e > now);
            if remembered.len() >= MAX_REMEMBERED {
                remembered.clear();
            }
        }
        remembered.insert(token.to_string(), (identity.clone(), exp));
        Ok(identity)
    }

    async fn check_with_keys(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
        family: Family,
    ) -> Result<serde_json::Value, KeyLookup> {
        let keys = self.keys.read().await;
        let candidates: Vec<&ProviderKey> = keys
            .keys
            .iter()
            .filter(|k| k.family == family && k.alg.is_none_or(|a| a == header.alg))
            .filter(|k| match &header.kid {
                Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
                None => true,
            })
            .collect();
        let key = match (candidates.as_slice(), &header.kid) {
            ([], _) => return Err(KeyLookup::Unknown),
            ([one], _) => *one,
            (_, None) => return Err(KeyLookup::Ambiguous),
            ([first, ..], Some(_)) => *first,
        };
        let mut v = Validation::new(header.alg);
        v.leeway = self.cfg.clock_skew.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_issuer(&[self.cfg.issuer.as_str()]);
        v.set_audience(&[self.cfg.audience.as_str()]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &v)
            .map(|data| data.claims)
            .map_err(|e| KeyLookup::Invalid(describe(&e)))
    }

    fn identity(&self, claims: &serde_json::Value) -> Identity {
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let client = text("azp").or_else(|| text("client_id"));
        let subject = text("sub").or_else(|| client.clone()).unwrap_or_default();
        let at_path = |path: &str| {
            let mut at = Some(claims);
            for part in path.split('.') {
                at = at.and_then(|v| v.get(part));
            }
            at
        };
        let at = at_path(&self.cfg.roles_claim);
        // A partner claim that is not a valid name names no partner: the partner's policies
        // do not apply, nothing more is opened.
        let partner = Some(&self.cfg.partner_claim)
            .filter(|p| !p.is_empty())
            .and_then(|p| at_path(p))
            .and_then(|v| v.as_str())
            .and_then(|p| crate::check_partner(p).ok());
        let roles: Vec<String> = match at {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(serde_json::Value::String(s)) => {
                s.split_whitespace().map(str::to_string).collect()
            }
            _ => Vec::new(),
        };
        Identity {
            subject,
            client,
            partner,
            via: Via::Token,
            grants: Grants::from_claim(&roles),
        }
    }
}

enum KeyLookup {
    Unknown,
    Ambiguous,
    Invalid(String),
}

fn provider_key(jwk: &Jwk) -> Option<ProviderKey> {
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Family::Rsa,
        AlgorithmParameters::EllipticCurve(ec)
            if ec.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
        {
            Family::Ec
        }
        AlgorithmParameters::OctetKeyPair(okp)
            if okp.curve == jsonwebtoken::jwk::EllipticCurve::Ed25519 =>
        {
            Family::Ed
        }
        // Symmetric keys and other curves are never used.
        _ => return None,
    };
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
    {
        return None;
    }
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(declared) => {
            use jsonwebtoken::jwk::KeyAlgorithm as K;
            let alg = match declared {
                K::RS256 => Algorithm::RS256,
                K::ES256 => Algorithm::ES256,
                K::EdDSA => Algorithm::EdDSA,
                // A key declared for anything else is never used.
                _ => return None,
            };
            if family_of(alg) != Some(family) {
                return None;
            }
            Some(alg)
        }
    };
    Some(ProviderKey {
        kid: jwk.common.key_id.clone(),
        alg,
        family,
        key: DecodingKey::from_jwk(jwk).ok()?,
    })
}

/// Why a token whose header lists `crit` is refused: `crit` names header parameters that a
/// recipient must understand or else reject the token (RFC 7515, 4.1.11). This verifier
/// understands no extension, and jsonwebtoken ignores the parameter.
fn critical_extensions(token: &str) -> Option<String> {
    let first = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first)
        .ok()?;
    let header: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let crit = header.get("crit")?;
    Some(format!(
        "the token's header marks {crit} as critical; no header extension is understood"
    ))
}

/// A verification failure in words for the client.
fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => "the token's signature does not verify".into(),
        K::ExpiredSignature => "the token has expired".into(),
        K::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        K::InvalidIssuer => "the token was issued by another issuer".into(),
        K::InvalidAudience => "the token is meant for another audience".into(),
        K::MissingRequiredClaim(c) => format!("the token has no {c} claim"),
        K::InvalidAlgorithm => "the token's algorithm does not match the key".into(),
        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => {
            "the token is not a well-formed JWT".into()
        }
        other => format!("the token cannot be verified ({other:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    use serde_json::{json, Value};

    const ISSUER: &str = "https://sso.city.example/realms/city";

    /// A provider whose JWKS is a fixed document.
    struct Published(Value);

    #[async_trait]
    impl JsonFetch for Published {
        async fn get_json(&self, _url: &str) -> Result<Value, String> {
            Ok(self.0.clone())
        }
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn ed25519(kid: &str) -> (Ed25519KeyPair, Value) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
            "x": b64(pair.public_key().as_ref()),
        });
        (pair, jwk)
    }

    /// A compact JWS of `header` and `claims`, signed by hand so that any header can be made.
    fn signed(pair: &Ed25519KeyPair, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = pair.sign(input.as_bytes());
        format!("{input}.{}", b64(sig.as_ref()))
    }

    fn claims() -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": ISSUER, "aud": "infoharbor", "sub": "s", "exp": now + 300,
               "roles": ["reader@sg-lta"]})
    }

    fn verifier(jwks: Value) -> JwtVerifier {
        JwtVerifier::new(
            OidcConfig {
                issuer: ISSUER.into(),
                audience: "infoharbor".into(),
                roles_claim: "roles".into(),
                partner_claim: "org.partner".into(),
                clock_skew: Duration::from_secs(30),
                jwks_url: Some(format!("{ISSUER}/certs")),
                refetch_interval: Duration::from_secs(10),
            },
            Arc::new(Published(jwks)),
        )
    }

    #[tokio::test]
    async fn a_key_the_verifier_cannot_read_does_not_hide_the_others() {
        let (pair, jwk) = ed25519("ed-1");
        let v = verifier(json!({"keys": [
            // Algorithms and curves jsonwebtoken has no name for.
            {"kty": "EC", "crv": "P-521", "alg": "ES512", "kid": "p521", "use": "sig",
             "x": "AQ", "y": "AQ"},
            {"kty": "OKP", "crv": "X25519", "alg": "ECDH-ES", "kid": "x25519", "use": "enc",
             "x": "AQ"},
            {"kty": "RSA", "alg": "RSA-OAEP-384", "kid": "enc", "use": "enc", "n": "AQ", "e": "AQAB"},
            jwk,
        ]}));
        assert_eq!(v.prefetch().await, Ok(1));
        let token = signed(&pair, json!({"alg": "EdDSA", "kid": "ed-1"}), claims());
        let identity = v.verify(&token).await.unwrap();
        assert_eq!(identity.grants, Grants::from_claim(&["reader@sg-lta"]));
    }

    #[tokio::test]
    async fn a_token_with_critical_header_extensions_is_refused() {
        let (pair, jwk) = ed25519("ed-1");
        let v = verifier(json!({"keys": [jwk]}));
        let plain = signed(&pair, json!({"alg": "EdDSA", "kid": "ed-1"}), claims());
        assert!(v.verify(&plain).await.is_ok());
        let crit = signed(
            &pair,
            json!({"alg": "EdDSA", "kid": "ed-1", "crit": ["exp-ext"], "exp-ext": 1}),
            claims(),
        );
        let err = v.verify(&crit).await.unwrap_err();
        assert!(
            matches!(&err, AuthError::Rejected(why) if why.contains("critical")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn the_partner_claim_names_the_partner_and_a_bad_one_names_none() {
        let (pair, jwk) = ed25519("ed-1");
        let v = verifier(json!({"keys": [jwk]}));
        let with = |org: Value| {
            let mut c = claims();
            c["org"] = org;
            signed(&pair, json!({"alg": "EdDSA", "kid": "ed-1"}), c)
        };
        for (org, want) in [
            (json!({"partner": "kl-city"}), Some("kl-city")),
            (json!({"partner": "kl city"}), None),
            (json!({"partner": 7}), None),
            (json!({}), None),
        ] {
            let got = v.verify(&with(org.clone())).await.expect("a valid token");
            assert_eq!(got.partner.as_deref(), want, "{org}");
        }
    }
}
