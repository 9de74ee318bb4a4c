//! Development certificates (feature `dev-certs`): a throw-away CA and leaf
//! certificates it signs, so that tests and demos run real chain
//! verification instead of trusting a self-signed leaf.
//!
//! Keys are ECDSA P-256, generated fresh on every call. Never use these in
//! production: the CA key lives only in memory and anyone holding a
//! [`DevCa`] can mint certificates it trusts.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, date_time_ymd,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{Identity, TlsError};

/// A certificate authority for development.
///
/// ```
/// use netstrata_tls::dev_certs::DevCa;
///
/// let ca = DevCa::new().unwrap();
/// let server = ca.issue(&["localhost", "127.0.0.1"]).unwrap();
/// assert_eq!(server.chain.len(), 1);
/// assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// assert_eq!(ca.roots().len(), 1);
/// ```
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
    pem: String,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

/// A leaf certificate signed by a [`DevCa`], with its key, as DER and PEM.
#[derive(Debug)]
pub struct DevCert {
    /// The chain: the leaf alone (the CA is the trust anchor).
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivatePkcs8KeyDer<'static>,
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// The leaf's key, PKCS#8 PEM.
    pub key_pem: String,
}

impl Clone for DevCert {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }
}

impl DevCert {
    /// The chain and key as an [`Identity`] for server or client options.
    pub fn identity(&self) -> Identity {
        Identity::new(
            self.chain.clone(),
            PrivateKeyDer::Pkcs8(self.key.clone_key()),
        )
    }
}

impl DevCa {
    /// A new CA named "netstrata development CA" and a few hex digits of
    /// its key, so that two CAs never share a name (a verifier picks the
    /// issuer by name).
    pub fn new() -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let tag: String = key.public_key_raw()[1..5]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self::with_key(&format!("netstrata development CA {tag}"), key)
    }

    /// A new CA with the common name `name`.
    pub fn named(name: &str) -> Result<Self, TlsError> {
        Self::with_key(name, KeyPair::generate()?)
    }

    fn with_key(common_name: &str, key: KeyPair) -> Result<Self, TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            pem: cert.pem(),
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The CA certificate, PEM (for `openssl -CAfile`).
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// A root store trusting this CA alone.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.cert.clone())
            .expect("rcgen produces a parsable CA certificate");
        roots
    }

    /// A leaf valid for `names` (DNS names or IP addresses), for servers
    /// and clients alike, valid from 1975 to 4096.
    pub fn issue(&self, names: &[&str]) -> Result<DevCert, TlsError> {
        self.issue_with(names, CertificateParams::new(owned(names))?)
    }

    /// A leaf for `names` that expired on 2001-01-01 (for testing rejection).
    pub fn issue_expired(&self, names: &[&str]) -> Result<DevCert, TlsError> {
        let mut params = CertificateParams::new(owned(names))?;
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(2001, 1, 1);
        self.issue_with(names, params)
    }

    fn issue_with(
        &self,
        names: &[&str],
        mut params: CertificateParams,
    ) -> Result<DevCert, TlsError> {
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("netstrata dev"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(DevCert {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}
