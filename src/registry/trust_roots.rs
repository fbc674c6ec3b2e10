//! Where the registry client's TLS trust comes from: the system's CA certificates when it
//! has any, else the Mozilla root store bundled into bunker (`webpki-root-certs`).
//!
//! Minimal hosts (a `FROM scratch` container, a rescue system, a fresh NAS) often have no
//! CA bundle. reqwest's default verifier then refuses to build a client at all ("No CA
//! certificates were loaded from the system"), which would break even plain-HTTP
//! registries that never use TLS. The system is asked once per process (honouring
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`), and the choice is logged with `-v`.

use std::sync::OnceLock;

use reqwest::{Certificate, ClientBuilder};
use rustls_native_certs::CertificateResult;

/// The roots HTTPS connections to registries are verified against.
#[derive(Debug, Clone)]
pub enum TrustRoots {
    /// The system's store (reqwest's platform verifier loads it), with this many usable roots.
    System { roots: usize },
    /// No usable system roots: the bundled Mozilla roots, and why the system had none.
    Bundled {
        certificates: Vec<Certificate>,
        reason: String,
    },
}

impl TrustRoots {
    /// The roots for this process: decided (and logged) on first use.
    pub fn for_process() -> &'static TrustRoots {
        static ROOTS: OnceLock<TrustRoots> = OnceLock::new();
        ROOTS.get_or_init(|| {
            let roots = Self::choose(rustls_native_certs::load_native_certs());
            roots.log();
            roots
        })
    }

    /// System roots if `loaded` holds at least one certificate rustls can use, else bundled.
    pub fn choose(loaded: CertificateResult) -> TrustRoots {
        let mut store = rustls::RootCertStore::empty();
        let (usable, unusable) = store.add_parsable_certificates(loaded.certs);
        if usable > 0 {
            return TrustRoots::System { roots: usable };
        }
        let mut reason = "no CA certificates found on this system".to_string();
        if unusable > 0 {
            reason.push_str(&format!(" ({unusable} unreadable)"));
        }
        if let Some(error) = loaded.errors.first() {
            reason.push_str(&format!(": {error}"));
        }
        TrustRoots::Bundled {
            certificates: bundled_certificates(),
            reason,
        }
    }

    /// Configures `builder` to verify HTTPS against these roots.
    pub fn apply(&self, builder: ClientBuilder) -> ClientBuilder {
        match self {
            TrustRoots::System { .. } => builder,
            TrustRoots::Bundled { certificates, .. } => {
                builder.tls_certs_only(certificates.iter().cloned())
            }
        }
    }

    fn log(&self) {
        match self {
            TrustRoots::System { roots } => {
                tracing::debug!("HTTPS registries verified against {roots} system CA roots")
            }
            TrustRoots::Bundled {
                certificates,
                reason,
            } => tracing::info!(
                "{reason}; HTTPS registries are verified against bunker's bundled Mozilla \
                 root store ({} roots); set SSL_CERT_FILE to use others",
                certificates.len()
            ),
        }
    }
}

/// The Mozilla roots compiled into bunker.
fn bundled_certificates() -> Vec<Certificate> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| Certificate::from_der(der).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(certs: Vec<rustls::pki_types::CertificateDer<'static>>) -> CertificateResult {
        let mut result = CertificateResult::default();
        result.certs = certs;
        result
    }

    #[test]
    fn no_system_certificates_means_the_bundled_roots() {
        match TrustRoots::choose(loaded(Vec::new())) {
            TrustRoots::Bundled {
                certificates,
                reason,
            } => {
                assert!(certificates.len() > 100, "{} roots", certificates.len());
                assert_eq!(reason, "no CA certificates found on this system");
            }
            other => panic!("expected the bundled roots, got {other:?}"),
        }
    }

    #[test]
    fn unreadable_system_certificates_mean_the_bundled_roots() {
        let garbage = rustls::pki_types::CertificateDer::from(vec![1, 2, 3]);
        match TrustRoots::choose(loaded(vec![garbage])) {
            TrustRoots::Bundled { reason, .. } => assert_eq!(
                reason,
                "no CA certificates found on this system (1 unreadable)"
            ),
            other => panic!("expected the bundled roots, got {other:?}"),
        }
    }

    #[test]
    fn one_usable_system_certificate_keeps_the_system_store() {
        let root = webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].clone();
        assert!(matches!(
            TrustRoots::choose(loaded(vec![root])),
            TrustRoots::System { roots: 1 }
        ));
    }

    #[test]
    fn the_bundled_roots_build_a_client() {
        let roots = TrustRoots::choose(loaded(Vec::new()));
        let _ = rustls::crypto::ring::default_provider().install_default();
        roots
            .apply(reqwest::Client::builder())
            .build()
            .expect("a client on the bundled roots");
    }
}
