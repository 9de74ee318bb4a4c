//! Building rustls configurations with the crate's defaults: TLS 1.3 only
//! unless TLS 1.2 is allowed, the aws-lc-rs provider, resumption on.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion, version};

use crate::{TlsError, pem};

/// A certificate chain (end entity first) and its private key.
#[derive(Debug)]
pub struct Identity {
    /// The chain, end entity first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The end entity's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// An identity from DER items.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self { chain, key }
    }

    /// Loads the chain and the key from PEM files (they may be one file).
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        Ok(Self::new(
            pem::load_certs(chain)?,
            pem::load_private_key(key)?,
        ))
    }

    fn certified(self, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
        CertifiedKey::from_der(self.chain, self.key, provider)
            .map(Arc::new)
            .map_err(TlsError::Config)
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self::new(self.chain.clone(), self.key.clone_key())
    }
}

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!(
    "netstrata-tls needs a crypto provider: enable its `aws-lc-rs` (default) or `ring` feature"
);

/// The rustls crypto provider every configuration of this crate uses:
/// aws-lc-rs with the `aws-lc-rs` feature (the default), else ring with the
/// `ring` feature. With both on (as with `--all-features`), aws-lc-rs.
pub fn provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

/// A session ticketer from the crate's crypto provider.
fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, TlsError> {
    #[cfg(feature = "aws-lc-rs")]
    let ticketer = rustls::crypto::aws_lc_rs::Ticketer::new();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let ticketer = rustls::crypto::ring::Ticketer::new();
    ticketer.map_err(TlsError::Config)
}

static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&version::TLS13];
static TLS13_AND_12: &[&SupportedProtocolVersion] = &[&version::TLS13, &version::TLS12];

fn versions(tls12: bool) -> &'static [&'static SupportedProtocolVersion] {
    match tls12 {
        true => TLS13_AND_12,
        false => TLS13_ONLY,
    }
}

/// Picks the server certificate by the name the client asked for (SNI),
/// falling back to a default for clients that send no name or an unknown one.
#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello
            .server_name()
            .and_then(|name| self.by_name.get(&name.to_ascii_lowercase()))
            .or(self.default.as_ref())
            .cloned()
    }
}

/// Who must show a client certificate.
#[derive(Debug, Clone)]
enum ClientAuth {
    None,
    Verifier(Arc<dyn ClientCertVerifier>),
}

/// A server configuration: certificates (one default, more chosen by SNI),
/// ALPN, versions, client authentication, session tickets.
///
/// ```
/// # #[cfg(feature = "dev-certs")] {
/// use netstrata_tls::{ServerOptions, dev_certs::DevCa};
///
/// let ca = DevCa::new().unwrap();
/// let config = ServerOptions::new()
///     .with_identity(ca.issue(&["localhost"]).unwrap().identity())
///     .with_sni_identity("api.example", ca.issue(&["api.example"]).unwrap().identity())
///     .with_alpn([b"h2".to_vec()])
///     .build()
///     .unwrap();
/// assert_eq!(config.alpn_protocols, [b"h2".to_vec()]);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ServerOptions {
    default: Option<Identity>,
    by_name: Vec<(String, Identity)>,
    alpn: Vec<Vec<u8>>,
    tls12: bool,
    client_auth: ClientAuth,
    tickets: bool,
}

impl ServerOptions {
    /// No certificate yet, TLS 1.3 only, no ALPN, no client authentication,
    /// session tickets on.
    pub fn new() -> Self {
        Self {
            default: None,
            by_name: Vec::new(),
            alpn: Vec::new(),
            tls12: false,
            client_auth: ClientAuth::None,
            tickets: true,
        }
    }

    /// The certificate for clients that send no name (SNI) or one that no
    /// [`with_sni_identity`](Self::with_sni_identity) matches.
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.default = Some(identity);
        self
    }

    /// The certificate for clients asking for `name` (case-insensitive).
    pub fn with_sni_identity(mut self, name: &str, identity: Identity) -> Self {
        self.by_name.push((name.to_ascii_lowercase(), identity));
        self
    }

    /// The ALPN protocols the server accepts, most preferred first. A
    /// client that offers ALPN but none of these fails the handshake.
    pub fn with_alpn(mut self, protocols: impl IntoIterator<Item = Vec<u8>>) -> Self {
        self.alpn = protocols.into_iter().collect();
        self
    }

    /// Whether TLS 1.2 is allowed besides TLS 1.3 (default: no).
    pub fn with_tls12(mut self, allow: bool) -> Self {
        self.tls12 = allow;
        self
    }

    /// Requires a client certificate issued by one of `roots` (mTLS).
    pub fn with_client_auth_roots(self, roots: RootCertStore) -> Result<Self, TlsError> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()?;
        Ok(self.with_client_cert_verifier(verifier))
    }

    /// Verifies client certificates with `verifier` (for instance a
    /// [`WebPkiClientVerifier`] that allows anonymous clients or checks CRLs).
    pub fn with_client_cert_verifier(mut self, verifier: Arc<dyn ClientCertVerifier>) -> Self {
        self.client_auth = ClientAuth::Verifier(verifier);
        self
    }

    /// Whether the server issues session tickets for resumption (default: yes).
    pub fn with_tickets(mut self, on: bool) -> Self {
        self.tickets = on;
        self
    }

    /// The rustls configuration, to share between all connections.
    pub fn build(self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = provider();
        let mut by_name = HashMap::new();
        for (name, identity) in self.by_name {
            by_name.insert(name, identity.certified(&provider)?);
        }
        let default = self.default.map(|i| i.certified(&provider)).transpose()?;
        if default.is_none() && by_name.is_empty() {
            return Err(TlsError::Config(rustls::Error::General(
                "server has no certificate".into(),
            )));
        }
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions(self.tls12))
            .map_err(TlsError::Config)?;
        let builder = match self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Verifier(v) => builder.with_client_cert_verifier(v),
        };
        let mut config = builder.with_cert_resolver(Arc::new(SniResolver { by_name, default }));
        config.alpn_protocols = self.alpn;
        if self.tickets {
            config.ticketer = ticketer()?;
        }
        Ok(Arc::new(config))
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// A client configuration: trusted roots, ALPN, versions, a client
/// certificate, resumption.
///
/// ```
/// use netstrata_tls::ClientOptions;
///
/// // Mozilla's root set, from the webpki-roots crate.
/// let config = ClientOptions::with_webpki_roots()
///     .with_alpn([b"h2".to_vec(), b"http/1.1".to_vec()])
///     .build()
///     .unwrap();
/// assert_eq!(config.alpn_protocols.len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    roots: Arc<RootCertStore>,
    alpn: Vec<Vec<u8>>,
    tls12: bool,
    identity: Option<Identity>,
    resumption: bool,
}

impl ClientOptions {
    /// Trusts `roots` (see [`pem::load_roots`]); TLS 1.3 only, no ALPN, no
    /// client certificate, resumption on.
    pub fn new(roots: RootCertStore) -> Self {
        Self {
            roots: Arc::new(roots),
            alpn: Vec::new(),
            tls12: false,
            identity: None,
            resumption: true,
        }
    }

    /// Trusts Mozilla's root set, bundled in the binary
    /// ([`pem::webpki_roots`]).
    #[cfg(feature = "webpki-roots")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webpki-roots")))]
    pub fn with_webpki_roots() -> Self {
        Self::new(pem::webpki_roots())
    }

    /// Trusts the platform's roots ([`pem::native_roots`]: the system
    /// store, or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set).
    ///
    /// # Errors
    /// [`TlsError::NoNativeRoots`] if no root could be loaded.
    #[cfg(feature = "native-roots")]
    #[cfg_attr(docsrs, doc(cfg(feature = "native-roots")))]
    pub fn with_native_roots() -> Result<Self, TlsError> {
        pem::native_roots().map(Self::new)
    }

    /// The ALPN protocols offered, most preferred first.
    pub fn with_alpn(mut self, protocols: impl IntoIterator<Item = Vec<u8>>) -> Self {
        self.alpn = protocols.into_iter().collect();
        self
    }

    /// Whether TLS 1.2 is allowed besides TLS 1.3 (default: no).
    pub fn with_tls12(mut self, allow: bool) -> Self {
        self.tls12 = allow;
        self
    }

    /// The certificate shown to servers that ask for one (mTLS).
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Whether sessions are kept (in memory, 256 of them, shared by every
    /// connection made from the built configuration) and resumed (default: yes).
    pub fn with_resumption(mut self, on: bool) -> Self {
        self.resumption = on;
        self
    }

    /// The rustls configuration, to share between connections (and their
    /// resumable sessions).
    pub fn build(self) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions(self.tls12))
            .map_err(TlsError::Config)?
            .with_root_certificates(self.roots);
        let mut config = match self.identity {
            Some(id) => builder
                .with_client_auth_cert(id.chain, id.key)
                .map_err(TlsError::Config)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn;
        if !self.resumption {
            config.resumption = Resumption::disabled();
        }
        Ok(Arc::new(config))
    }
}
