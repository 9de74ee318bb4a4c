//! TLS flags, in two groups: the accepting side's ([`ServerTlsArgs`]) and
//! the connecting side's ([`ClientTlsArgs`]). `echo-server` takes the
//! first, `bench` the second, `tunnel` both, since `--stack-side` decides
//! which end of TLS it is.

use std::path::PathBuf;

use clap::Args;

use crate::dev_ca;
use netstrata_cli::stack::TlsSide;
use netstrata_tls::{ClientOptions, Identity, ServerOptions, dev_certs::DevCa, pem};

/// The accepting side's TLS flags.
#[derive(Args, Debug)]
pub(crate) struct ServerTlsArgs {
    /// PEM file of the certificate chain shown to clients.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// PEM file of the private key of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Without --cert: where to write the development CA for clients
    /// (default: dev-ca.pem in a directory of yours only, mode 0700:
    /// $XDG_RUNTIME_DIR/netstrata, else ~/.cache/netstrata).
    #[arg(long, value_name = "FILE")]
    ca_out: Option<PathBuf>,
    /// Require a client certificate issued by one of the CAs in this PEM
    /// file (mutual TLS); a client without one is refused.
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
}

/// The connecting side's TLS flags.
#[derive(Args, Debug)]
pub(crate) struct ClientTlsArgs {
    /// PEM file of the CA certificates to trust (default: the webpki roots).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The name the server's certificate must carry, sent as SNI (default:
    /// localhost).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// PEM file of a certificate chain to show a server that asks for one
    /// (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// PEM file of the private key of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    client_key: Option<PathBuf>,
}

/// `echo-server`'s TLS: the accepting side.
#[derive(Args, Debug)]
#[command(next_help_heading = "TLS")]
pub(crate) struct AcceptTls {
    /// Encrypt with TLS 1.3, with --cert and --key, or a development
    /// certificate whose CA is written to --ca-out.
    #[arg(long)]
    tls: bool,
    #[command(flatten)]
    server: ServerTlsArgs,
}

/// `bench`'s TLS: the connecting side.
#[derive(Args, Debug)]
#[command(next_help_heading = "TLS")]
pub(crate) struct ConnectTls {
    /// Encrypt with TLS 1.3, verifying the server against --ca.
    #[arg(long)]
    tls: bool,
    #[command(flatten)]
    client: ClientTlsArgs,
}

/// `tunnel`'s TLS: either side, as `--stack-side` says.
#[derive(Args, Debug)]
#[command(next_help_heading = "TLS")]
pub(crate) struct EitherTls {
    /// Encrypt the stack side with TLS 1.3: with --stack-side listen the
    /// tunnel is the TLS server (--cert, --key, --ca-out, --client-ca),
    /// with connect the client (--ca, --server-name, --client-cert,
    /// --client-key).
    #[arg(long)]
    tls: bool,
    #[command(flatten)]
    server: ServerTlsArgs,
    #[command(flatten)]
    client: ClientTlsArgs,
}

/// Which end of TLS the tunnel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Server,
    Client,
}

impl AcceptTls {
    /// The server's configuration, or `None` without --tls.
    pub(crate) fn side(&self) -> Result<Option<TlsSide>, String> {
        with_tls(self.tls, self.server.given(), || self.server.config())
    }
}

impl ConnectTls {
    /// The client's configuration, or `None` without --tls.
    pub(crate) fn side(&self) -> Result<Option<TlsSide>, String> {
        with_tls(self.tls, self.client.given(), || self.client.config())
    }
}

impl EitherTls {
    /// The configuration of `role`, or `None` without --tls; flags of the
    /// other role are refused.
    pub(crate) fn side(&self, role: Role) -> Result<Option<TlsSide>, String> {
        match role {
            Role::Server if self.client.given() => Err(
                "--ca, --server-name, --client-cert and --client-key are for the connecting \
                 side (--stack-side connect)"
                    .into(),
            ),
            Role::Client if self.server.given() => Err(
                "--cert, --key, --ca-out and --client-ca are for the accepting side \
                 (--stack-side listen)"
                    .into(),
            ),
            Role::Server => with_tls(self.tls, self.server.given(), || self.server.config()),
            Role::Client => with_tls(self.tls, self.client.given(), || self.client.config()),
        }
    }
}

/// `config()` with --tls; without, `None`, or an error if TLS flags were
/// `given`.
fn with_tls(
    tls: bool,
    given: bool,
    config: impl FnOnce() -> Result<TlsSide, String>,
) -> Result<Option<TlsSide>, String> {
    match (tls, given) {
        (true, _) => config().map(Some),
        (false, true) => Err("the TLS flags need --tls".into()),
        (false, false) => Ok(None),
    }
}

impl ServerTlsArgs {
    fn given(&self) -> bool {
        self.cert.is_some() || self.ca_out.is_some() || self.client_ca.is_some()
    }

    /// The server's TLS configuration: from files, or a development CA.
    fn config(&self) -> Result<TlsSide, String> {
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => load_identity(cert, key)?,
            _ => self.dev_identity()?,
        };
        let mut options = ServerOptions::new().with_identity(identity);
        if let Some(path) = &self.client_ca {
            let roots = pem::load_roots(path)
                .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
            options = options
                .with_client_auth_roots(roots)
                .map_err(|e| format!("--client-ca {}: {e}", path.display()))?;
        }
        let config = options
            .build()
            .map_err(|e| format!("TLS configuration: {e}"))?;
        Ok(TlsSide::Server(config))
    }

    /// A development certificate, its CA written where clients find it.
    fn dev_identity(&self) -> Result<Identity, String> {
        let ca = DevCa::new().map_err(|e| format!("development CA: {e}"))?;
        let leaf = ca
            .issue(&["localhost", "127.0.0.1"])
            .map_err(|e| format!("development certificate: {e}"))?;
        let path = match &self.ca_out {
            Some(path) => path.clone(),
            None => dev_ca::private_dir()
                .map_err(|e| format!("no private directory for the development CA: {e}"))?
                .join("dev-ca.pem"),
        };
        dev_ca::write_private(&path, ca.cert_pem().as_bytes())
            .map_err(|e| format!("cannot write the CA to {}: {e}", path.display()))?;
        say!(
            "development CA written to {} (clients: --tls --ca {})",
            path.display(),
            path.display()
        );
        Ok(leaf.identity())
    }
}

impl ClientTlsArgs {
    fn given(&self) -> bool {
        self.ca.is_some() || self.server_name.is_some() || self.client_cert.is_some()
    }

    /// The client's TLS configuration.
    fn config(&self) -> Result<TlsSide, String> {
        let mut options = match &self.ca {
            Some(path) => ClientOptions::new(
                pem::load_roots(path)
                    .map_err(|e| format!("cannot load {}: {e}", path.display()))?,
            ),
            None => ClientOptions::with_webpki_roots(),
        };
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            options = options.with_identity(load_identity(cert, key)?);
        }
        let config = options
            .build()
            .map_err(|e| format!("TLS configuration: {e}"))?;
        Ok(TlsSide::Client {
            config,
            server_name: self.server_name.as_deref().unwrap_or("localhost").into(),
        })
    }
}

fn load_identity(cert: &PathBuf, key: &PathBuf) -> Result<Identity, String> {
    Identity::from_pem_files(cert, key)
        .map_err(|e| format!("cannot load {} / {}: {e}", cert.display(), key.display()))
}
