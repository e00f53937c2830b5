//! TLS for `rediss://` targets: rustls with the webpki roots or a given CA, client certificates,
//! and `--tls-insecure` (no certificate check, said loudly by the CLI).

use super::super::error::ReplayError;
use super::TlsOptions;
use std::path::PathBuf;
use std::sync::Arc;

pub(super) fn tls_config(t: &TlsOptions) -> Result<rustls::ClientConfig, ReplayError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cfg_err = |m: String| ReplayError::Config(m);
    let load_certs = |p: &PathBuf| -> Result<Vec<CertificateDer<'static>>, ReplayError> {
        let data = std::fs::read(p).map_err(|e| cfg_err(format!("{}: {e}", p.display())))?;
        rustls_pemfile::certs(&mut &data[..])
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cfg_err(format!("{}: {e}", p.display())))
    };
    // ring on purpose: it builds with no C toolchain beyond cc (aws-lc-rs needs cmake). rustls
    // 0.23.48 deprecates ring's provider for lacking post-quantum key exchange; a Redis or
    // Valkey server (OpenSSL) agrees on X25519 or a NIST curve with it, as before.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| cfg_err(e.to_string()))?;
    let builder = if t.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &t.ca {
            Some(ca) => {
                for c in load_certs(ca)? {
                    roots
                        .add(c)
                        .map_err(|e| cfg_err(format!("{}: {e}", ca.display())))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    };
    match (&t.cert, &t.key) {
        (Some(c), Some(k)) => {
            let data = std::fs::read(k).map_err(|e| cfg_err(format!("{}: {e}", k.display())))?;
            let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &data[..])
                .map_err(|e| cfg_err(format!("{}: {e}", k.display())))?
                .ok_or_else(|| cfg_err(format!("{}: no private key found", k.display())))?;
            builder
                .with_client_auth_cert(load_certs(c)?, key)
                .map_err(|e| cfg_err(format!("client certificate: {e}")))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(cfg_err("--tls-cert and --tls-key go together".into())),
    }
}

/// Certificate verifier for `--tls-insecure`: accepts any certificate, still checks signatures of
/// the handshake itself.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
