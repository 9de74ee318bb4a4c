//! Handshakes, data, negotiation and orderly ends over the virtual-clock harness.

mod common;

use std::sync::Arc;

use common::{
    certs, client_config, client_options, links, messages, pair, pair_with, server_config,
    server_options, tls_error, tls12_only_client,
};
use netstrata_core::State;
use netstrata_core::testing::{Link, Pair};
use netstrata_tls::{Tls, TlsError};
use rustls::{self, CipherSuite, HandshakeKind, ProtocolVersion};

#[test]
fn handshake_and_data_both_ways_under_every_chunking() {
    for link in links() {
        let mut pair = pair(link);
        let msgs = messages(60, 1);
        // Written before the handshake: held, then sent.
        pair.send_both(&msgs).unwrap();
        assert_eq!(pair.client.conn.state(), State::Handshaking);
        pair.drive();
        assert!(
            matches!(pair.errors(), (None, None)),
            "{link:?}: {:?}",
            pair.errors()
        );
        assert_eq!(pair.server.take_inbox(), msgs, "{link:?}");
        assert_eq!(pair.client.take_inbox(), msgs, "{link:?}");
        assert_eq!(pair.client.conn.state(), State::Open);

        // Orderly close both ways: close_notify, FIN, Closed, no error.
        pair.client.conn.close();
        pair.drive();
        assert!(pair.server.conn.is_read_closed(), "{link:?}");
        assert_eq!(pair.client.conn.state(), State::Closing);
        pair.server.conn.send(b"after the client closed").unwrap();
        pair.server.conn.close();
        pair.drive();
        assert_eq!(pair.client.take_inbox(), [&b"after the client closed"[..]]);
        assert_eq!(pair.client.conn.state(), State::Closed, "{link:?}");
        assert_eq!(pair.server.conn.state(), State::Closed, "{link:?}");
        assert!(matches!(pair.errors(), (None, None)), "{:?}", pair.errors());
    }
}

#[test]
fn tls13_by_default_and_negotiated_parameters_are_exposed() {
    let mut pair = pair(Link::new());
    pair.drive();
    for tls in [pair.client.conn.stack(), pair.server.conn.stack()] {
        assert!(!tls.connection().is_handshaking());
        assert_eq!(tls.protocol_version(), Some(ProtocolVersion::TLSv1_3));
        assert!(tls.cipher_suite().is_some());
        assert_eq!(tls.handshake_kind(), Some(HandshakeKind::Full));
        assert_eq!(tls.alpn_protocol(), None);
        assert_eq!(tls.server_name(), Some("localhost"));
    }
    let chain = pair.client.conn.stack().peer_certificates().unwrap();
    assert_eq!(chain, &certs().localhost.chain[..]);
    assert_eq!(pair.server.conn.stack().peer_certificates(), None);

    // A TLS 1.2-only client cannot talk to the default (1.3-only) server.
    let old = tls12_only_client();
    let mut pair = pair_with(old, server_options().build().unwrap(), Link::new());
    pair.drive();
    let err = pair.server.conn.error().expect("no common version");
    assert!(err.is_peer_fault(), "{err}");
    assert!(matches!(tls_error(err), TlsError::Protocol(_)), "{err}");
}

#[test]
fn tls12_when_allowed_under_every_chunking() {
    let server = server_options().with_tls12(true).build().unwrap();
    for link in links() {
        let mut pair = pair_with(tls12_only_client(), server.clone(), link);
        let msgs = messages(20, 2);
        pair.send_both(&msgs).unwrap();
        pair.drive();
        assert!(matches!(pair.errors(), (None, None)), "{:?}", pair.errors());
        assert_eq!(pair.server.take_inbox(), msgs);
        assert_eq!(pair.client.take_inbox(), msgs);
        let tls = pair.server.conn.stack();
        assert_eq!(tls.protocol_version(), Some(ProtocolVersion::TLSv1_2));
        let suite = tls.cipher_suite().unwrap().suite();
        assert!(
            matches!(
                suite,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                    | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                    | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            ),
            "{suite:?}"
        );
        pair.client.conn.close();
        pair.server.conn.close();
        pair.drive();
        assert_eq!(pair.client.conn.state(), State::Closed);
        assert_eq!(pair.server.conn.state(), State::Closed);
    }
}

#[test]
fn alpn_picks_the_servers_preference_or_fails_without_overlap() {
    let server = server_options()
        .with_alpn([b"h2".to_vec(), b"netstrata/1".to_vec()])
        .build()
        .unwrap();
    let client = client_options()
        .with_alpn([b"netstrata/1".to_vec(), b"h2".to_vec()])
        .build()
        .unwrap();
    let mut pair = pair_with(client, server.clone(), Link::new());
    pair.drive();
    assert_eq!(pair.client.conn.stack().alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(pair.server.conn.stack().alpn_protocol(), Some(&b"h2"[..]));

    let client = client_options()
        .with_alpn([b"other".to_vec()])
        .build()
        .unwrap();
    let mut pair = pair_with(client, server, Link::new());
    pair.drive();
    let err = pair.server.conn.error().expect("no common protocol");
    let TlsError::Protocol(inner) = tls_error(err) else {
        panic!("{err}");
    };
    assert_eq!(*inner, rustls::Error::NoApplicationProtocol);
}

#[test]
fn sni_chooses_the_certificate_by_name() {
    let server = server_options()
        .with_sni_identity("API.example", certs().api.identity())
        .build()
        .unwrap();
    for (name, leaf) in [
        ("api.example", &certs().api),
        ("localhost", &certs().localhost),
    ] {
        let client = common::client_conn(client_options().build().unwrap(), name);
        let mut pair = Pair::new(client, common::server_conn(server.clone()), Link::new());
        pair.client.conn.send(name.as_bytes()).unwrap();
        pair.drive();
        assert!(matches!(pair.errors(), (None, None)), "{:?}", pair.errors());
        assert_eq!(pair.server.take_inbox(), [name.as_bytes()]);
        assert_eq!(pair.server.conn.stack().server_name(), Some(name));
        let chain = pair.client.conn.stack().peer_certificates().unwrap();
        assert_eq!(chain, &leaf.chain[..], "{name}");
    }
    // No SNI (an IP address): the default certificate, valid for 127.0.0.1.
    let client = common::client_conn(client_options().build().unwrap(), "127.0.0.1");
    let mut pair = Pair::new(client, common::server_conn(server), Link::new());
    pair.drive();
    assert!(matches!(pair.errors(), (None, None)), "{:?}", pair.errors());
    assert_eq!(pair.server.conn.stack().server_name(), None);
}

#[test]
fn mutual_tls_accepted_and_rejected() {
    let server = server_options()
        .with_client_auth_roots(certs().ca.roots())
        .unwrap()
        .build()
        .unwrap();
    let good = client_options()
        .with_identity(certs().client.identity())
        .build()
        .unwrap();
    let mut pair = pair_with(good, server.clone(), Link::new());
    pair.client.conn.send(b"with a certificate").unwrap();
    pair.drive();
    assert!(matches!(pair.errors(), (None, None)), "{:?}", pair.errors());
    assert_eq!(pair.server.take_inbox(), [&b"with a certificate"[..]]);
    let chain = pair.server.conn.stack().peer_certificates().unwrap();
    assert_eq!(chain, &certs().client.chain[..]);

    // No certificate at all.
    let mut pair = pair_with(client_config(), server.clone(), Link::new());
    pair.client.conn.send(b"anonymous").unwrap();
    pair.drive();
    let err = pair.server.conn.error().expect("certificate required");
    assert!(matches!(tls_error(err), TlsError::NoCertificate), "{err}");
    assert!(pair.server.take_inbox().is_empty());
    // The server's alert reaches the client before its FIN: the client is
    // told why, not merely cut off.
    let told = pair.client.conn.error().expect("client told");
    assert!(
        matches!(tls_error(told), TlsError::AlertReceived(_)),
        "{told}"
    );

    // A certificate from a CA the server does not trust.
    let rogue = client_options()
        .with_identity(certs().rogue.identity())
        .build()
        .unwrap();
    let mut pair = pair_with(rogue, server, Link::new());
    pair.client.conn.send(b"rogue").unwrap();
    pair.drive();
    let err = pair.server.conn.error().expect("unknown issuer");
    assert!(
        matches!(
            tls_error(err),
            TlsError::BadCertificate(rustls::CertificateError::UnknownIssuer)
        ),
        "{err}"
    );
    assert!(pair.server.take_inbox().is_empty());
}

#[test]
fn a_configurable_verifier_can_make_client_certificates_optional() {
    let roots = Arc::new(certs().ca.roots());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots,
        netstrata_tls::provider(),
    )
    .allow_unauthenticated()
    .build()
    .unwrap();
    let server = server_options()
        .with_client_cert_verifier(verifier)
        .build()
        .unwrap();
    // Anonymous: accepted, no peer certificate.
    let mut pair = pair_with(client_config(), server.clone(), Link::new());
    pair.client.conn.send(b"anonymous").unwrap();
    pair.drive();
    assert_eq!(pair.server.take_inbox(), [&b"anonymous"[..]]);
    assert_eq!(pair.server.conn.stack().peer_certificates(), None);
    // With a certificate: verified and exposed.
    let client = client_options()
        .with_identity(certs().client.identity())
        .build()
        .unwrap();
    let mut pair = pair_with(client, server.clone(), Link::new());
    pair.drive();
    let chain = pair.server.conn.stack().peer_certificates().unwrap();
    assert_eq!(chain, &certs().client.chain[..]);
    // A certificate it cannot verify is still refused.
    let rogue = client_options()
        .with_identity(certs().rogue.identity())
        .build()
        .unwrap();
    let mut pair = pair_with(rogue, server, Link::new());
    pair.drive();
    let err = pair.server.conn.error().expect("unknown issuer");
    assert!(
        matches!(tls_error(err), TlsError::BadCertificate(_)),
        "{err}"
    );
}

#[test]
fn a_second_connection_resumes_the_session() {
    let client = client_config();
    let server = server_config();
    let mut first = pair_with(client.clone(), server.clone(), Link::new());
    first.client.conn.send(b"first").unwrap();
    first.drive();
    assert_eq!(
        first.client.conn.stack().handshake_kind(),
        Some(HandshakeKind::Full)
    );
    let mut second = pair_with(client, server, Link::new());
    second.client.conn.send(b"second").unwrap();
    second.drive();
    assert!(
        matches!(second.errors(), (None, None)),
        "{:?}",
        second.errors()
    );
    assert_eq!(second.server.take_inbox(), [&b"second"[..]]);
    for tls in [second.client.conn.stack(), second.server.conn.stack()] {
        assert_eq!(tls.handshake_kind(), Some(HandshakeKind::Resumed));
    }
    // Resumption off: a full handshake again.
    let client = client_options().with_resumption(false).build().unwrap();
    let server = server_config();
    pair_with(client.clone(), server.clone(), Link::new()).drive();
    let mut again = pair_with(client, server, Link::new());
    again.drive();
    let kind = again.client.conn.stack().handshake_kind();
    assert_eq!(kind, Some(HandshakeKind::Full));
}

#[test]
fn wrong_name_and_expired_certificates_are_rejected_by_the_client() {
    use rustls::CertificateError;
    type Check = fn(&CertificateError) -> bool;
    let cases: [(&str, _, Check); 3] = [
        ("other.example", server_options(), |e| {
            matches!(e, CertificateError::NotValidForNameContext { .. })
        }),
        (
            "localhost",
            netstrata_tls::ServerOptions::new().with_identity(certs().expired.identity()),
            |e| matches!(e, CertificateError::ExpiredContext { .. }),
        ),
        (
            "localhost",
            netstrata_tls::ServerOptions::new().with_identity(certs().rogue.identity()),
            |e| matches!(e, CertificateError::UnknownIssuer),
        ),
    ];
    for (name, server, expected) in cases {
        let client = common::client_conn(client_config(), name);
        let server = common::server_conn(server.build().unwrap());
        let mut pair = Pair::new(client, server, Link::new());
        pair.client.conn.send(b"secret").unwrap();
        pair.drive();
        let err = pair.client.conn.error().expect("certificate rejected");
        assert!(err.is_peer_fault());
        match tls_error(err) {
            TlsError::BadCertificate(e) => assert!(expected(e), "{name}: {e:?}"),
            other => panic!("{name}: {other}"),
        }
        // Nothing was sent to a server we do not trust.
        assert!(pair.server.take_inbox().is_empty());
    }
}

#[test]
fn invalid_server_name_is_a_configuration_error() {
    let err = Tls::client(client_config(), "not a name!").unwrap_err();
    assert!(matches!(err, TlsError::InvalidServerName(_)), "{err}");
    assert!(err.is_local());
}
