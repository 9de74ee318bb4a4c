//! Property test: random messages under random chunking round-trip through
//! TLS over the harness, both ways, and end cleanly.

mod common;

use common::{client_config, pair_with, server_config};
use netstrata_core::State;
use netstrata_core::testing::{Chunking, Link};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn random_messages_round_trip_under_random_chunking(
        up in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 0..24),
        down in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 0..24),
        seed in any::<u64>(),
        max in 1usize..600,
        tls12 in any::<bool>(),
    ) {
        let (client, server) = match tls12 {
            true => (common::tls12_only_client(), common::server_options().with_tls12(true).build().unwrap()),
            false => (client_config(), server_config()),
        };
        let link = Link::new().with_chunking(Chunking::Random { seed, max });
        let mut pair = pair_with(client, server, link);
        for m in &up {
            pair.client.conn.send(m).unwrap();
        }
        for m in &down {
            pair.server.conn.send(m).unwrap();
        }
        pair.client.conn.close();
        pair.server.conn.close();
        pair.drive();
        prop_assert!(pair.errors().0.is_none() && pair.errors().1.is_none(), "{:?}", pair.errors());
        prop_assert_eq!(pair.server.take_inbox(), up);
        prop_assert_eq!(pair.client.take_inbox(), down);
        prop_assert_eq!(pair.client.conn.state(), State::Closed);
        prop_assert_eq!(pair.server.conn.state(), State::Closed);
    }
}

/// The exported conformance suite, a client against a server. Past the
/// handshake, output keeps the room but for one record's overhead.
#[test]
fn the_layer_passes_the_conformance_suite() {
    use netstrata_core::testing::{Conformance, Side};
    use netstrata_tls::Tls;
    Conformance::new(|side| match side {
        Side::Client => Tls::client(client_config(), "localhost").expect("a client"),
        Side::Server => Tls::server(server_config()).expect("a server"),
    })
    .with_lower_slack(29)
    .run();
}
