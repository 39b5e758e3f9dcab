//! The broker's identity as a context source: a URI made once, kept in the data folder, so
//! that peers that registered this broker recognise it after a restart.

use std::path::Path;

use anyhow::Context as _;

const FILE: &str = "source-identity";

/// The identity stored in `data_dir`, or a new one stored there.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if id.starts_with("urn:") {
            return Ok(id.to_string());
        }
    }
    let id = format!("urn:ngsi-ld:ContextSource:{}", uuid::Uuid::new_v4());
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_identity_survives_a_restart() {
        let dir = tempfile_dir();
        let first = super::load_or_create(&dir).unwrap();
        assert!(first.starts_with("urn:ngsi-ld:ContextSource:"));
        assert_eq!(super::load_or_create(&dir).unwrap(), first);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("infoharbor-identity-{}", std::process::id()))
    }
}
