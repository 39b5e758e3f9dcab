//! `infoharbor keys`: API keys, created, listed and revoked, either through a running broker's
//! `/admin/v1/keys` (`--broker URL`, with an operator's key or token) or straight in the store of
//! a stopped broker (`--data-dir D`). The second is how the first operator key is made: whoever
//! may open the data folder holds the broker's keys anyway. redb locks its file, so a running
//! broker makes the offline mode fail, and the message says to use `--broker`.
//!
//! A created key is printed once, alone on stdout (`KEY=$(infoharbor keys … create …)`); what
//! it is goes to stderr.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use harbor_auth::{Grants, KeyRing};
use harbor_store_embedded::EmbeddedStore;
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// Base URL of a running broker, e.g. http://127.0.0.1:1026.
    #[arg(long, global = true)]
    broker: Option<String>,
    /// Data folder of a stopped broker: its store is opened directly.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// An operator's API key or bearer token, for --broker.
    #[arg(
        long,
        global = true,
        env = "INFOHARBOR_ADMIN_KEY",
        hide_env_values = true
    )]
    key: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Makes a key and prints it: it is shown only this once.
    Create {
        /// What the key may do: role@tenant, role@* or operator; repeat or separate with commas.
        /// A partner's key may have none: its partner's access policies say what it may do.
        #[arg(
            long = "grant",
            required_unless_present = "partner",
            value_delimiter = ','
        )]
        grants: Vec<String>,
        /// Who or what holds the key, e.g. "Bugis parking sensors" [default: its grants].
        #[arg(long)]
        name: Option<String>,
        /// The partner the key's holder acts for, e.g. kl-city: `partner:kl-city` policies
        /// apply to it.
        #[arg(long)]
        partner: Option<String>,
    },
    /// Lists every key, revoked ones too, without secrets.
    List {
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Revokes a key by its id: it stops working at once.
    Revoke { id: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

/// Where the keys are.
enum Target<'a> {
    Broker { url: &'a str, key: Option<&'a str> },
    Store(&'a Path),
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let target = match (&args.broker, &args.data_dir) {
        (Some(url), None) => Target::Broker {
            url: url.trim_end_matches('/'),
            key: args.key.as_deref(),
        },
        (None, Some(dir)) => Target::Store(dir),
        (Some(_), Some(_)) => {
            anyhow::bail!("give either --broker (a running broker) or --data-dir (a stopped one)")
        }
        (None, None) => anyhow::bail!(
            "give --broker URL to manage the keys of a running broker, or --data-dir D to open \
             the store of a stopped one"
        ),
    };
    let answer = match target {
        Target::Broker { url, key } => online(url, key, &args.action).await?,
        Target::Store(dir) => offline(dir, &args.action).await?,
    };
    show(&args.action, &answer)
}

/// Through the administration API of a running broker.
async fn online(base: &str, key: Option<&str>, action: &Action) -> anyhow::Result<Value> {
    let keys = format!("{base}/admin/v1/keys");
    let (method, url, body, expected) = match action {
        Action::Create {
            grants,
            name,
            partner,
        } => (
            "POST",
            keys,
            Some(json!({
                "name": name_or_grants(name, grants, partner),
                "grants": grants,
                "partner": partner,
            })),
            201,
        ),
        Action::List { .. } => ("GET", keys, None, 200),
        Action::Revoke { id } => ("DELETE", format!("{keys}/{id}"), None, 200),
    };
    let bearer = key.map(|k| format!("Bearer {}", k.trim()));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| ("Authorization", b))
        .into_iter()
        .collect();
    let (status, text) = harbor_outbound::admin::call(method, &url, &headers, body.as_ref())
        .await
        .map_err(anyhow::Error::msg)?;
    if status != expected {
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_string))
            .unwrap_or(text);
        let hint = match (status, key) {
            (401, None) => "; give an operator's key or token with --key or INFOHARBOR_ADMIN_KEY",
            (401 | 403, Some(_)) => "; --key must be an operator's key or token",
            _ => "",
        };
        anyhow::bail!("{method} {url} answered {status}: {detail}{hint}");
    }
    serde_json::from_str(&text).with_context(|| format!("{method} {url} answered {text}"))
}

/// Straight in the store of a stopped broker.
async fn offline(dir: &Path, action: &Action) -> anyhow::Result<Value> {
    let file = dir.join("infoharbor.redb");
    if !matches!(action, Action::Create { .. }) && !file.exists() {
        anyhow::bail!(
            "there is no store in {} (no {})",
            dir.display(),
            file.display()
        );
    }
    let opened = dir.to_path_buf();
    let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&opened))
        .await?
        .map_err(|e| {
            let why = e.to_string();
            if why.contains("already open") {
                anyhow::anyhow!(
                    "the store in {} is in use, most likely by a running broker: stop it, or \
                     manage its keys with --broker URL --key KEY ({why})",
                    dir.display()
                )
            } else {
                anyhow::anyhow!("opening the store in {}: {why}", dir.display())
            }
        })?;
    let ring = KeyRing::load(Arc::new(store)).await?;
    Ok(match action {
        Action::Create {
            grants,
            name,
            partner,
        } => {
            let parsed = Grants::parse(grants).map_err(anyhow::Error::msg)?;
            let by = format!("infoharbor keys --data-dir {}", dir.display());
            let (key, text) = ring
                .create(
                    &name_or_grants(name, grants, partner),
                    parsed,
                    partner.as_deref(),
                    Some(by),
                )
                .await?;
            let mut shown = key.listing();
            shown["key"] = json!(text);
            shown
        }
        Action::List { .. } => Value::Array(ring.list().iter().map(|k| k.listing()).collect()),
        Action::Revoke { id } => ring.revoke(id).await?.listing(),
    })
}

fn name_or_grants(name: &Option<String>, grants: &[String], partner: &Option<String>) -> String {
    match (name, partner) {
        (Some(n), _) => n.clone(),
        (None, Some(p)) if grants.is_empty() => format!("partner {p}"),
        (None, _) => grants.join(" "),
    }
}

fn grants_of(key: &Value) -> String {
    let grants: Vec<&str> = key["grants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    grants.join(",")
}

/// Prints an answer of either mode, which have the same shape.
fn show(action: &Action, answer: &Value) -> anyhow::Result<()> {
    match action {
        Action::Create { .. } => {
            let text = answer["key"]
                .as_str()
                .context("the answer to a key creation holds no key")?;
            let partner = answer["partner"]
                .as_str()
                .map(|p| format!(" for partner {p}"))
                .unwrap_or_default();
            eprintln!(
                "created API key {} ({:?}) with grants {}{partner}; it is shown only now",
                answer["id"].as_str().unwrap_or(""),
                answer["name"].as_str().unwrap_or(""),
                grants_of(answer)
            );
            println!("{text}");
        }
        Action::List {
            output: Output::Json,
        } => println!("{}", serde_json::to_string_pretty(answer)?),
        Action::List { .. } => {
            let keys = answer.as_array().cloned().unwrap_or_default();
            println!(
                "{:<12}  {:<24}  {:<16}  {:<24}  {:<24}  name",
                "id", "grants", "partner", "created", "revoked"
            );
            for k in &keys {
                println!(
                    "{:<12}  {:<24}  {:<16}  {:<24}  {:<24}  {}",
                    k["id"].as_str().unwrap_or(""),
                    grants_of(k),
                    k["partner"].as_str().unwrap_or("-"),
                    k["createdAt"].as_str().unwrap_or(""),
                    k["revokedAt"].as_str().unwrap_or("-"),
                    k["name"].as_str().unwrap_or("")
                );
            }
            println!("{} key(s)", keys.len());
        }
        Action::Revoke { .. } => println!(
            "revoked {} at {}",
            answer["id"].as_str().unwrap_or(""),
            answer["revokedAt"].as_str().unwrap_or("")
        ),
    }
    Ok(())
}
