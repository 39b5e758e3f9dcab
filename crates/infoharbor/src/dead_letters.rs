//! `infoharbor dead-letters`: the operator's view of notifications a running broker gave up
//! on, over its `/admin/v1/deadLetters` endpoints.

use clap::{Subcommand, ValueEnum};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// Base URL of the broker.
    #[arg(
        long,
        global = true,
        env = "INFOHARBOR_URL",
        default_value = "http://127.0.0.1:1026"
    )]
    url: String,
    /// Only this tenant's dead letters (default: every tenant).
    #[arg(long, global = true)]
    tenant: Option<String>,
    /// An operator's (or the tenant admin's) API key or bearer token, when the broker
    /// authenticates.
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
    /// Lists dead letters: id, tenant, subscription, entities, attempts, last error.
    List {
        /// Only those of this subscription.
        #[arg(long)]
        subscription: Option<String>,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Sends dead letters again, from a fresh attempt count (all, or those given with --id).
    Replay {
        #[arg(long = "id", value_delimiter = ',')]
        ids: Vec<u64>,
    },
    /// Drops dead letters for good (all, or those given with --id).
    Drop {
        #[arg(long = "id", value_delimiter = ',')]
        ids: Vec<u64>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

fn ids_query(ids: &[u64]) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = ids.iter().map(u64::to_string).collect();
        format!("?id={}", list.join(","))
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let base = format!("{}/admin/v1/deadLetters", args.url.trim_end_matches('/'));
    let tenant = args.tenant.as_deref();
    let (method, url) = match &args.action {
        Action::List { subscription, .. } => (
            "GET",
            match subscription {
                Some(s) => format!("{base}?subscriptionId={s}"),
                None => base.clone(),
            },
        ),
        Action::Replay { ids } => ("POST", format!("{base}/replay{}", ids_query(ids))),
        Action::Drop { ids } => ("DELETE", format!("{base}{}", ids_query(ids))),
    };
    let bearer = args.key.as_deref().map(|k| format!("Bearer {}", k.trim()));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(t) = tenant {
        headers.push(("NGSILD-Tenant", t));
    }
    if let Some(b) = &bearer {
        headers.push(("Authorization", b));
    }
    let (status, body) = harbor_outbound::admin::call(method, &url, &headers, None)
        .await
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(status == 200, "{method} {url} answered {status}: {body}");
    let value: serde_json::Value = serde_json::from_str(&body)?;
    match args.action {
        Action::List {
            output: Output::Json,
            ..
        } => println!("{}", serde_json::to_string_pretty(&value)?),
        Action::List { .. } => {
            let items = value.as_array().cloned().unwrap_or_default();
            println!(
                "{:>8}  {:<16}  {:<48}  {:>8}  {:>8}  last error",
                "id", "tenant", "subscription", "entities", "attempts"
            );
            for d in &items {
                println!(
                    "{:>8}  {:<16}  {:<48}  {:>8}  {:>8}  {}",
                    d["id"],
                    d["tenant"].as_str().unwrap_or(""),
                    d["subscriptionId"].as_str().unwrap_or(""),
                    d["changes"],
                    d["attempts"],
                    d["lastError"].as_str().unwrap_or("")
                );
            }
            println!("{} dead letter(s)", items.len());
        }
        Action::Replay { .. } => println!("replayed {}", value["replayed"]),
        Action::Drop { .. } => println!("dropped {}", value["dropped"]),
    }
    Ok(())
}
