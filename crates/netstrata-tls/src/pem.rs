//! Loading certificates and keys from PEM files, and root sets.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::TlsError;

fn pem_error(path: &Path, what: &'static str, source: pem::Error) -> TlsError {
    match source {
        pem::Error::NoItemsFound => TlsError::PemEmpty {
            path: path.to_owned(),
            what,
        },
        source => TlsError::Pem {
            path: path.to_owned(),
            source,
        },
    }
}

/// Every certificate in a PEM file, in file order (a chain: end entity first).
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let path = path.as_ref();
    let what = "certificate";
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, what, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, what, e))?;
    match certs.is_empty() {
        true => Err(pem_error(path, what, pem::Error::NoItemsFound)),
        false => Ok(certs),
    }
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(path, "private key", e))
}

/// The certificates of a PEM file as trust anchors (a CA file).
pub fn load_roots(path: impl AsRef<Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(TlsError::Config)?;
    }
    Ok(roots)
}

/// Mozilla's root set, as shipped by the `webpki-roots` crate (no system
/// store is read).
#[cfg(feature = "webpki-roots")]
#[cfg_attr(docsrs, doc(cfg(feature = "webpki-roots")))]
pub fn webpki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// The platform's trusted roots, read by rustls-native-certs: the system
/// store, or the file and directory `SSL_CERT_FILE` and `SSL_CERT_DIR`
/// name when set. Certificates it cannot parse are skipped.
///
/// # Errors
/// [`TlsError::NoNativeRoots`] if no root could be loaded, with the
/// loader's errors.
#[cfg(feature = "native-roots")]
#[cfg_attr(docsrs, doc(cfg(feature = "native-roots")))]
pub fn native_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _skipped) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(TlsError::NoNativeRoots(match errors.is_empty() {
            true => "the platform store is empty".into(),
            false => errors.join("; "),
        }));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_name_the_path() {
        let e = load_certs("/nonexistent/netstrata.pem").unwrap_err();
        assert!(matches!(e, TlsError::Pem { .. }), "{e}");
        assert!(e.to_string().starts_with("/nonexistent/netstrata.pem: "));

        let dir = std::env::temp_dir().join(format!("netstrata-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        let e = load_private_key(&empty).unwrap_err();
        assert!(
            matches!(
                e,
                TlsError::PemEmpty {
                    what: "private key",
                    ..
                }
            ),
            "{e}"
        );
        assert!(matches!(load_certs(&empty), Err(TlsError::PemEmpty { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_webpki_root_set_is_not_empty() {
        #[cfg(feature = "webpki-roots")]
        assert!(webpki_roots().len() > 100);
    }
}
