//! `infoharbor keys` on the real binary: the first operator key is made offline in the store of
//! a stopped broker, then keys are managed through the running broker with it, and a revoked
//! key stops working at once.

mod support;

use serde_json::{json, Value};
use support::{client, Broker, TYPE};

const TENANT: &str = "sg-lta";

/// What one run of the command gave.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `infoharbor keys ARGS`, with INFOHARBOR_ADMIN_KEY set to `env_key` when given.
async fn keys(args: &[&str], env_key: Option<&str>) -> Ran {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_infoharbor"));
    cmd.arg("keys")
        .args(args)
        .env_remove("INFOHARBOR_ADMIN_KEY");
    if let Some(k) = env_key {
        cmd.env("INFOHARBOR_ADMIN_KEY", k);
    }
    let out = cmd.output().await.expect("run infoharbor keys");
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `infoharbor keys ARGS`, which must succeed; its stdout.
async fn keys_ok(args: &[&str], env_key: Option<&str>) -> String {
    let ran = keys(args, env_key).await;
    assert!(
        ran.ok,
        "infoharbor keys {args:?} failed:\n{}{}",
        ran.stdout, ran.stderr
    );
    ran.stdout
}

/// `infoharbor keys ARGS`, which must fail; its stderr.
async fn keys_fail(args: &[&str], env_key: Option<&str>) -> String {
    let ran = keys(args, env_key).await;
    assert!(
        !ran.ok,
        "infoharbor keys {args:?} succeeded: {}",
        ran.stdout
    );
    ran.stderr
}

async fn status(key: &str, method: reqwest::Method, url: &str, body: Option<Value>) -> u16 {
    let mut req = client()
        .request(method, url)
        .header("NGSILD-Tenant", TENANT)
        .header("X-API-Key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send()
        .await
        .expect("the broker answers")
        .status()
        .as_u16()
}

fn listed(json_list: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(json_list)
        .expect("keys list --output json prints JSON")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_key_made_offline_manages_keys_through_the_broker() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let data_arg = data.to_str().unwrap();

    // Nothing to list before there is a store.
    let err = keys_fail(&["--data-dir", data_arg, "list"], None).await;
    assert!(err.contains("no store"), "{err}");
    let op = keys_ok(
        &[
            "create",
            "--grant",
            "operator",
            "--name",
            "bootstrap",
            "--data-dir",
            data_arg,
        ],
        None,
    )
    .await;
    let op = op.trim().to_string();
    assert!(op.starts_with("ihk_"), "only the key on stdout: {op:?}");

    let mut broker = Broker::start_with(&data, work.path(), 0, &["--auth", "apikey"]).await;
    let base = broker.base.clone();
    let entities = format!("{base}/ngsi-ld/v1/entities");

    // The store is locked while the broker runs, and the message says what to do.
    let err = keys_fail(&["--data-dir", data_arg, "list"], None).await;
    assert!(
        err.contains("running broker") && err.contains("--broker"),
        "{err}"
    );

    // Online without a key: refused, and told how to give one.
    let err = keys_fail(&["--broker", &base, "list"], None).await;
    assert!(
        err.contains("401") && err.contains("INFOHARBOR_ADMIN_KEY"),
        "{err}"
    );

    let reader = keys_ok(
        &[
            "--broker",
            &base,
            "--key",
            &op,
            "create",
            "--grant",
            &format!("reader@{TENANT}"),
            "--name",
            "Bugis parking app",
        ],
        None,
    )
    .await;
    let reader = reader.trim().to_string();
    assert!(reader.starts_with("ihk_") && reader != op, "{reader:?}");
    let writer = keys_ok(
        &[
            "--broker",
            &base,
            "create",
            "--grant",
            &format!("writer@{TENANT}"),
        ],
        Some(&op),
    )
    .await;
    let writer = writer.trim().to_string();
    // A partner's key needs no grant: the partner's access policies say what it may do.
    let partner = keys_ok(
        &["--broker", &base, "create", "--partner", "kl-city"],
        Some(&op),
    )
    .await;
    assert!(partner.trim().starts_with("ihk_"), "{partner:?}");
    let err = keys_fail(&["--broker", &base, "create"], Some(&op)).await;
    assert!(
        err.contains("--grant"),
        "a key needs a grant or a partner: {err}"
    );

    let id = format!("urn:ngsi-ld:{TYPE}:keys-cli");
    let entity = json!({"id": id, "type": TYPE, "occupancy": {"type": "Property", "value": 1}});
    use reqwest::Method as M;
    assert_eq!(
        status(&writer, M::POST, &entities, Some(entity.clone())).await,
        201
    );
    let one = format!("{entities}/{id}");
    assert_eq!(
        status(&reader, M::GET, &one, None).await,
        200,
        "the reader reads"
    );
    assert_eq!(
        status(&reader, M::POST, &entities, Some(entity)).await,
        403,
        "the reader may not write"
    );
    // A reader's key manages no keys.
    let err = keys_fail(&["--broker", &base, "list"], Some(&reader)).await;
    assert!(err.contains("403") && err.contains("operator"), "{err}");

    let table = keys_ok(&["--broker", &base, "list"], Some(&op)).await;
    assert!(
        table.contains("Bugis parking app")
            && table.contains("kl-city")
            && table.contains("4 key(s)"),
        "{table}"
    );
    let all = listed(&keys_ok(&["--broker", &base, "list", "--output", "json"], Some(&op)).await);
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(
        all.iter()
            .any(|k| k["partner"] == "kl-city" && k["name"] == "partner kl-city"),
        "{all:?}"
    );
    assert!(
        all.iter()
            .all(|k| k.get("key").is_none() && k.get("secretSha256").is_none()),
        "listings carry no secrets: {all:?}"
    );
    let reader_id = all
        .iter()
        .find(|k| k["name"] == "Bugis parking app")
        .and_then(|k| k["id"].as_str())
        .unwrap()
        .to_string();
    assert!(reader.starts_with(&format!("ihk_{reader_id}_")));
    let said = keys_ok(&["--broker", &base, "revoke", &reader_id], Some(&op)).await;
    assert!(
        said.starts_with(&format!("revoked {reader_id} at ")),
        "{said}"
    );
    assert_eq!(
        status(&reader, M::GET, &one, None).await,
        401,
        "a revoked key stops working at once"
    );
    assert_eq!(
        status(&writer, M::GET, &one, None).await,
        200,
        "the others work"
    );

    // Stopped, the store is open to the command again and shows what the broker did.
    broker.kill9();
    let all = listed(&keys_ok(&["--data-dir", data_arg, "list", "--output", "json"], None).await);
    let revoked: Vec<&Value> = all.iter().filter(|k| k["revokedAt"].is_string()).collect();
    assert_eq!(revoked.len(), 1, "{all:?}");
    assert_eq!(revoked[0]["id"], reader_id.as_str());
    assert_eq!(
        all.iter().find(|k| k["name"] == "bootstrap").unwrap()["createdBy"],
        format!("infoharbor keys --data-dir {data_arg}").as_str()
    );
    let err = keys_fail(&["--data-dir", data_arg, "revoke", "ffffffffffff"], None).await;
    assert!(err.contains("no API key ffffffffffff"), "{err}");
    let err = keys_fail(
        &[
            "--data-dir",
            data_arg,
            "create",
            "--grant",
            "operator@sg-lta",
        ],
        None,
    )
    .await;
    assert!(err.contains("operator is global"), "{err}");
    let err = keys_fail(&["list"], None).await;
    assert!(
        err.contains("--broker") && err.contains("--data-dir"),
        "{err}"
    );
}
