//! TLS configurations that replay: a rustls crypto provider whose random
//! bytes and X25519 key shares come from a seed the fuzz input chooses, and
//! an Ed25519 certificate chain made from fixed keys (a `#[path]` module).
//!
//! rustls' own fuzzers and tests get determinism the same way: everything
//! random in a handshake goes through the provider (`secure_random` for
//! client and server randoms and session ids, the key exchange groups for
//! key shares), so a provider that draws from a seeded generator makes
//! every byte of a handshake a function of the seed. With aws-lc-rs' own
//! X25519 the key shares would come from aws-lc's generator, out of reach of
//! `secure_random`, and every encrypted record would differ from run to run;
//! an ECDSA certificate would do the same through the signature's nonce.
//! Ed25519 signatures are deterministic. The AEADs, key schedule and
//! certificate checks are aws-lc-rs' own: records are protected as in
//! production, so corruption is detected as in production.
//!
//! What stays non-deterministic: nothing on the wire. The server's session
//! tickets (if a ticketer were set) would be; none is set, and the client
//! does not resume (a shared client configuration would otherwise offer a
//! ticket from an earlier input).
//!
//! Not secure: the generator is xorshift, for fuzzing only.

use std::cell::Cell;
use std::sync::{Arc, OnceLock};

use aws_lc_rs::agreement;
use netstrata_tls::rustls::client::Resumption;
use netstrata_tls::rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, SecureRandom, SharedSecret,
    SupportedKxGroup, aws_lc_rs as provider,
};
use netstrata_tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use netstrata_tls::rustls::{ClientConfig, NamedGroup, RootCertStore, ServerConfig, version};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SerialNumber};

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(1) };
}

/// Restarts the generator: the handshakes that follow are a function of `seed`.
pub fn reseed(seed: u64) {
    STATE.with(|s| s.set(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1));
}

fn next_u64() -> u64 {
    STATE.with(|s| {
        // xorshift64*
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

fn fill(buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        let r = next_u64().to_le_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
}

#[derive(Debug)]
struct SeededRandom;

impl SecureRandom for SeededRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        fill(buf);
        Ok(())
    }
}

/// X25519 with private keys from the seeded generator.
#[derive(Debug)]
struct SeededX25519;

struct X25519Share {
    private: agreement::PrivateKey,
    public: Vec<u8>,
}

impl SupportedKxGroup for SeededX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, netstrata_tls::rustls::Error> {
        let mut secret = [0u8; 32];
        fill(&mut secret);
        let fail = |_| netstrata_tls::rustls::Error::FailedToGetRandomBytes;
        let private =
            agreement::PrivateKey::from_private_key(&agreement::X25519, &secret).map_err(fail)?;
        let public = private
            .compute_public_key()
            .map_err(|_| netstrata_tls::rustls::Error::FailedToGetRandomBytes)?
            .as_ref()
            .to_vec();
        Ok(Box::new(X25519Share { private, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

impl ActiveKeyExchange for X25519Share {
    fn complete(
        self: Box<Self>,
        peer_pub_key: &[u8],
    ) -> Result<SharedSecret, netstrata_tls::rustls::Error> {
        let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, peer_pub_key);
        agreement::agree(
            &self.private,
            peer,
            netstrata_tls::rustls::Error::from(
                netstrata_tls::rustls::PeerMisbehaved::InvalidKeyShare,
            ),
            |secret| Ok(SharedSecret::from(secret)),
        )
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

static SEEDED_X25519: SeededX25519 = SeededX25519;

/// aws-lc-rs' provider (cipher suites, signatures, key loading) with the
/// seeded generator and key exchange.
fn seeded_provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        kx_groups: vec![&SEEDED_X25519],
        secure_random: &SeededRandom,
        ..provider::default_provider()
    })
}

/// An Ed25519 PKCS#8 v1 document for a fixed 32-byte seed.
fn ed25519_pkcs8(seed: u8) -> PrivatePkcs8KeyDer<'static> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[seed; 32]);
    PrivatePkcs8KeyDer::from(der)
}

/// A server and a client configuration that trust each other, the server
/// valid for `localhost`, both on the seeded provider, TLS 1.3 only (the
/// default profile), no resumption.
pub struct Configs {
    /// The receiving side's.
    pub server: Arc<ServerConfig>,
    /// The honest peer's.
    pub client: Arc<ClientConfig>,
}

/// The configurations, built once per process.
pub fn configs() -> &'static Configs {
    static CONFIGS: OnceLock<Configs> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let ca_key = KeyPair::from_pkcs8_der_and_sign_algo(&ed25519_pkcs8(1), &rcgen::PKCS_ED25519)
            .expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.serial_number = Some(SerialNumber::from(1u64));
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_pkcs8 = ed25519_pkcs8(2);
        let leaf_key = KeyPair::from_pkcs8_der_and_sign_algo(&leaf_pkcs8, &rcgen::PKCS_ED25519)
            .expect("leaf key");
        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_string()]).expect("leaf params");
        leaf_params.serial_number = Some(SerialNumber::from(2u64));
        let leaf = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("leaf certificate");

        let server = ServerConfig::builder_with_provider(seeded_provider())
            .with_protocol_versions(&[&version::TLS13])
            .expect("TLS 1.3")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf.der().to_vec())],
                PrivateKeyDer::Pkcs8(leaf_pkcs8),
            )
            .expect("server configuration");

        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca_cert.der().to_vec()))
            .expect("CA certificate parses");
        let mut client = ClientConfig::builder_with_provider(seeded_provider())
            .with_protocol_versions(&[&version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.resumption = Resumption::disabled();
        Configs {
            server: Arc::new(server),
            client: Arc::new(client),
        }
    })
}
