//! TLS to the API server: trust only the pod's CA, with the smallest set of
//! algorithms that every Kubernetes API server (and front end) speaks.
//!
//! What is offered, and why (details in the README, "TLS"):
//! - TLS 1.3 and TLS 1.2. kube-apiserver speaks 1.3, but API servers built in
//!   FIPS mode with older Go releases, and some TLS-terminating front ends of
//!   managed control planes, still answer only 1.2.
//! - AES-GCM only. Go's TLS stack (every API server) and FIPS modes always
//!   offer it; ChaCha20-Poly1305 would only add code.
//! - X25519 and P-256 key exchange: P-256 for FIPS servers, X25519 for the rest.
//! - All of ring's signature verification algorithms: cluster CAs are RSA
//!   (kubeadm, most managed clusters) or ECDSA (P-256, P-384).
//! - No client keys: koordinator authenticates with a bearer token, so the
//!   provider loads no private key, and the signing code is not linked.

use rustls::crypto::ring as provider;
use rustls::crypto::{CryptoProvider, KeyProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::SigningKey;
use std::sync::Arc;

#[derive(Debug)]
struct NoKeys;

impl KeyProvider for NoKeys {
    fn load_private_key(
        &self,
        _key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "koordinator uses no client keys".into(),
        ))
    }
}

static NO_KEYS: NoKeys = NoKeys;

#[derive(Debug)]
struct Random;

impl rustls::crypto::SecureRandom for Random {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        let mut at = 0;
        while at < buf.len() {
            // SAFETY: getrandom writes at most the given length into buf.
            let n = unsafe { libc::getrandom(buf[at..].as_mut_ptr().cast(), buf.len() - at, 0) };
            if n <= 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(rustls::crypto::GetRandomFailed);
            }
            at += n as usize;
        }
        Ok(())
    }
}

static RANDOM: Random = Random;

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::SignatureScheme as S;
use webpki::ring as alg;

static VERIFY: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        alg::ECDSA_P256_SHA256,
        alg::ECDSA_P256_SHA384,
        alg::ECDSA_P384_SHA256,
        alg::ECDSA_P384_SHA384,
        alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        alg::RSA_PKCS1_2048_8192_SHA256,
        alg::RSA_PKCS1_2048_8192_SHA384,
        alg::RSA_PKCS1_2048_8192_SHA512,
        alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    ],
    mapping: &[
        (
            S::ECDSA_NISTP384_SHA384,
            &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
        ),
        (
            S::ECDSA_NISTP256_SHA256,
            &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
        ),
        (
            S::RSA_PSS_SHA512,
            &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            S::RSA_PSS_SHA384,
            &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            S::RSA_PSS_SHA256,
            &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (S::RSA_PKCS1_SHA512, &[alg::RSA_PKCS1_2048_8192_SHA512]),
        (S::RSA_PKCS1_SHA384, &[alg::RSA_PKCS1_2048_8192_SHA384]),
        (S::RSA_PKCS1_SHA256, &[alg::RSA_PKCS1_2048_8192_SHA256]),
    ],
};

fn crypto_provider() -> CryptoProvider {
    use provider::cipher_suite::*;
    CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ],
        kx_groups: vec![provider::kx_group::X25519, provider::kx_group::SECP256R1],
        signature_verification_algorithms: VERIFY,
        secure_random: &RANDOM,
        key_provider: &NO_KEYS,
    }
}

/// A client configuration that trusts exactly the certificates in `ca_pem`.
pub fn client_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate file ({e:?})"))?;
        roots
            .add(cert)
            .map_err(|e| format!("a certificate in it is not usable as a CA: {e}"))?;
    }
    if roots.is_empty() {
        return Err("it holds no PEM certificate".into());
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(crypto_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_refused_with_a_reason() {
        assert_eq!(
            client_config(b"hello").unwrap_err(),
            "it holds no PEM certificate"
        );
        assert!(
            client_config(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .is_err()
        );
    }
}
