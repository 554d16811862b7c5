//! Which certificate authorities the function trusts, for Stara and Leaf (reqwest) and for AWS
//! (the SDK's HTTPS client).
//!
//! By default the roots are compiled in: Mozilla's root program (`webpki-root-certs`) for Stara
//! and Leaf, the five Amazon Trust Services roots for AWS. Reading the system's bundle instead
//! (`TLS_ROOTS=system`) parses about 150 PEM certificates, twice (once per HTTP stack): about
//! 35 M instructions, nine tenths of a cold start (docs/BENCHMARKS.md). The bundled roots cost
//! a few hundred thousand. What changes about trust is in docs/SECURITY.md ("Transport").

use std::time::Duration;

use aws_sdk_secretsmanager::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};

use super::http::HttpSettings;

/// The roots of every AWS endpoint's certificate (Amazon Root CA 1–4, Starfield Services G2).
const AMAZON_TRUST_SERVICES: &[u8] = include_bytes!("amazon-trust-services.pem");

/// Where the trusted roots come from (`TLS_ROOTS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum TlsRoots {
    /// Compiled in: Mozilla's roots for Stara and Leaf, Amazon Trust Services' for AWS.
    #[default]
    Bundled,
    /// The system's store (the Lambda image's CA bundle, `SSL_CERT_FILE`), read at start-up.
    System,
}

impl TlsRoots {
    /// `bundled` or `system`, in any case.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "bundled" => Some(TlsRoots::Bundled),
            "system" => Some(TlsRoots::System),
            _ => None,
        }
    }
}

/// The one reqwest client of [`HttpClient`](super::http::HttpClient): no redirects (one could
/// carry the grower's tokens to another host), the trusted roots, the connect timeout.
pub(crate) fn reqwest_client(settings: &HttpSettings) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        // A redirect could carry the grower's tokens to another host: never follow one.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.request_timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(50))
        .user_agent(concat!("stara-connect/", env!("CARGO_PKG_VERSION")));
    with_roots(builder, settings.roots)
        .build()
        .expect("the TLS backend (rustls, compiled in) always initialises")
}

/// reqwest's builder with these roots: the system's through rustls-platform-verifier (reqwest's
/// default), or Mozilla's compiled in and nothing else.
fn with_roots(builder: reqwest::ClientBuilder, roots: TlsRoots) -> reqwest::ClientBuilder {
    match roots {
        TlsRoots::System => builder,
        TlsRoots::Bundled => builder.tls_certs_only(mozilla_roots()),
    }
}

fn mozilla_roots() -> impl Iterator<Item = reqwest::Certificate> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok())
}

/// The AWS SDK's HTTPS client (rustls with aws-lc, as the SDK's default), trusting only the
/// Amazon Trust Services roots; `None` for the system's store (the SDK's own default client).
pub(crate) fn aws_http_client(roots: TlsRoots) -> Option<SharedHttpClient> {
    if roots == TlsRoots::System {
        return None;
    }
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_TRUST_SERVICES);
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a trust store without extra server names always builds");
    Some(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context)
            .build_https(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    /// The DER of each certificate of a PEM bundle.
    fn ders(pem: &[u8]) -> Vec<Vec<u8>> {
        let text = std::str::from_utf8(pem).expect("PEM is text");
        let mut out = Vec::new();
        for block in text.split("-----BEGIN CERTIFICATE-----").skip(1) {
            let body = block
                .split("-----END CERTIFICATE-----")
                .next()
                .unwrap_or_default();
            let b64: String = body.split_whitespace().collect();
            out.push(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("base64"),
            );
        }
        out
    }

    #[test]
    fn the_bundled_roots_are_there() {
        assert!(mozilla_roots().count() > 100, "Mozilla's roots");
        let pem = reqwest::Certificate::from_pem_bundle(AMAZON_TRUST_SERVICES).expect("PEM");
        assert_eq!(pem.len(), 5, "Amazon Root CA 1-4, Starfield Services G2");
        // The same certificates are in Mozilla's list (which would do for AWS, at 30 × the cost).
        for der in ders(AMAZON_TRUST_SERVICES) {
            let listed = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .any(|c| c.as_ref() == der);
            assert!(listed, "an Amazon root that Mozilla does not list");
        }
    }

    #[test]
    fn both_stacks_build_with_either_choice() {
        for roots in [TlsRoots::Bundled, TlsRoots::System] {
            reqwest_client(&HttpSettings {
                roots,
                ..HttpSettings::default()
            });
            assert_eq!(aws_http_client(roots).is_some(), roots == TlsRoots::Bundled);
        }
    }

    #[test]
    fn the_switch_reads_two_words() {
        assert_eq!(TlsRoots::parse("System"), Some(TlsRoots::System));
        assert_eq!(TlsRoots::parse("bundled"), Some(TlsRoots::Bundled));
        assert_eq!(TlsRoots::parse("native"), None);
    }
}
