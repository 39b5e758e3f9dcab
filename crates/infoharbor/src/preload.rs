//! Preloaded `@context` documents: a folder the operator fills so that a city without internet
//! access resolves the contexts its data uses. The folder's `contexts.toml` names each file's URL:
//!
//! ```toml
//! [[context]]
//! url = "https://smartdatamodels.org/context.jsonld"
//! file = "smartdatamodels.jsonld"
//! ```

use std::collections::HashMap;
use std::path::Path;

use anyhow::{ensure, Context as _};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    context: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    url: String,
    file: String,
}

/// Reads every document the folder's manifest lists, by URL.
pub fn load(dir: &Path) -> anyhow::Result<HashMap<String, serde_json::Value>> {
    let manifest_path = dir.join("contexts.toml");
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    let manifest: Manifest =
        toml::from_str(&text).with_context(|| format!("{}", manifest_path.display()))?;
    let mut out = HashMap::new();
    for e in manifest.context {
        ensure!(
            !e.file.contains("..") && !Path::new(&e.file).is_absolute(),
            "{}: file \"{}\" must be a name inside {}",
            manifest_path.display(),
            e.file,
            dir.display()
        );
        let path = dir.join(&e.file);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("reading {} for {}", path.display(), e.url))?;
        let doc: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        ensure!(
            doc.get("@context").is_some(),
            "{} has no \"@context\" member",
            path.display()
        );
        out.insert(e.url, doc);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_manifest() {
        let dir = std::env::temp_dir().join(format!("infoharbor-preload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("contexts.toml"),
            "[[context]]\nurl = \"https://example.org/city.jsonld\"\nfile = \"city.jsonld\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("city.jsonld"),
            r#"{"@context": {"Bus": "https://example.org/Bus"}}"#,
        )
        .unwrap();
        let docs = load(&dir).unwrap();
        assert_eq!(
            docs["https://example.org/city.jsonld"]["@context"]["Bus"],
            "https://example.org/Bus"
        );

        std::fs::write(
            dir.join("contexts.toml"),
            "[[context]]\nurl = \"u\"\nfile = \"../etc/passwd\"\n",
        )
        .unwrap();
        assert!(load(&dir).is_err(), "files outside the folder are refused");
        std::fs::write(
            dir.join("contexts.toml"),
            "[[context]]\nurl = \"u\"\nfile = \"missing.jsonld\"\n",
        )
        .unwrap();
        let err = format!("{:#}", load(&dir).unwrap_err());
        assert!(err.contains("missing.jsonld"), "{err}");
    }
}
