//! The TLS settings of every outbound connection: rustls with the ring provider and the bundled
//! Mozilla roots (webpki-roots), so that nothing depends on the host's certificate store.

use std::sync::Arc;

/// A client configuration trusting the bundled roots.
pub(crate) fn client_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
