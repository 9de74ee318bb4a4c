//! The least a TLS echo over rustls can cost per message: the kernel's
//! part, measured as the plain hand-written mio echo of the same case, plus
//! the cryptography no server can skip, measured here in-process: opening
//! the request's records and sealing the reply's, through rustls' own
//! cipher API (AES-256-GCM from aws-lc-rs, the suite rustls peers agree on
//! by default).

use std::time::{Duration, Instant};

use netstrata_cli::stack::StackOptions;
use rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384;
use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, Iv, MessageEncrypter, OutboundChunks, OutboundPlainMessage,
};
use rustls::{ContentType, ProtocolVersion, SupportedCipherSuite};

use super::compare::{Case, Drive, Outcome, Rounds, measure};
use super::process::{Ports, Server};

/// Plaintext bytes per TLS record at most.
const RECORD: usize = 16 * 1024;
/// An AES-256 key.
const KEY: [u8; 32] = [7; 32];
/// The length prefix the echo frames each message with.
const FRAME_PREFIX: usize = 4;

/// µs per echo of `size`-byte messages spent opening the request and
/// sealing the reply, one record per 16 KiB of frame, timed for `secs`.
pub(crate) fn crypto_micros(size: usize, secs: f64) -> f64 {
    let SupportedCipherSuite::Tls13(suite) = TLS13_AES_256_GCM_SHA384 else {
        unreachable!("a TLS 1.3 suite")
    };
    let key = || AeadKey::from(KEY);
    let mut seal = suite.aead_alg.encrypter(key(), Iv::new([9; 12]));
    let mut open = suite.aead_alg.decrypter(key(), Iv::new([9; 12]));
    let frame = vec![b'x'; size + FRAME_PREFIX];
    // The request's records as the client sealed them, each with its
    // sequence number; each echo opens them in place and seals the reply
    // from the plaintext, which is the next echo's request (aws-lc-rs
    // wants the sequence numbers to increase).
    let mut seq = 0;
    let mut records: Vec<(Vec<u8>, u64)> = frame
        .chunks(RECORD)
        .map(|chunk| sealed(seal.as_mut(), chunk, &mut seq))
        .collect();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut echoes = 0u64;
    while Instant::now() < deadline {
        for (record, at) in &mut records {
            let message = InboundOpaqueMessage::new(
                ContentType::ApplicationData,
                ProtocolVersion::TLSv1_2,
                record,
            );
            let plain = open.decrypt(message, *at).expect("our own record opens");
            let reply = sealed(seal.as_mut(), plain.payload, &mut seq);
            (*record, *at) = reply;
        }
        echoes += 1;
    }
    started.elapsed().as_secs_f64() * 1e6 / echoes as f64
}

/// The payload of one sealed application-data record of `plain`, and the
/// sequence number `seq` it was sealed with (then counted on).
fn sealed(seal: &mut dyn MessageEncrypter, plain: &[u8], seq: &mut u64) -> (Vec<u8>, u64) {
    let message = OutboundPlainMessage {
        typ: ContentType::ApplicationData,
        version: ProtocolVersion::TLSv1_2,
        payload: OutboundChunks::Single(plain),
    };
    let at = *seq;
    *seq += 1;
    let record = seal
        .encrypt(message, at)
        .expect("a fresh sequence number seals");
    (record.payload.as_ref().to_vec(), at)
}

/// Measures the floor of `case` (the plain mio echo `limit` plus the
/// cryptography) and prints it against the TLS servers' `outcomes`.
pub(crate) fn print(
    limit: &Server,
    tls_servers: &[Server],
    outcomes: &[Outcome],
    case: Case,
    rounds: Rounds,
    ports: &mut Ports,
) {
    let plain = measure(
        std::slice::from_ref(limit),
        &StackOptions::default(),
        case,
        Drive::CLOSED,
        rounds,
        ports,
    )[0];
    let mut crypto: Vec<f64> = (0..rounds.rounds)
        .map(|_| crypto_micros(case.size, rounds.secs.min(1.0)))
        .collect();
    let crypto = super::median(&mut crypto);
    let floor = plain.cpu_us_per_msg + crypto;
    println!(
        "\nTLS floor, {} B, {} conns x depth {}: plain mio echo {:.3} + open and seal {:.3} = {:.3} µs/msg",
        case.size, case.conns, case.depth, plain.cpu_us_per_msg, crypto, floor
    );
    for (server, o) in tls_servers.iter().zip(outcomes) {
        println!(
            "  {:<16} {:>8.3} µs/msg, {:.3}x the floor",
            server.name,
            o.cpu_us_per_msg,
            o.cpu_us_per_msg / floor
        );
    }
}
