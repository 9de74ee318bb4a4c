//! Per-connection memory at the defaults, and the compression ratio those
//! defaults keep against zstd's level-3 defaults.

mod common;

use std::time::Instant;

use bytes::BytesMut;
use common::{log_messages, log_text, pair};
use netstrata_core::testing::Link;
use netstrata_core::{Flush, Layer, Outbound};
use netstrata_zstd::{Dictionary, Zstd, ZstdConfig};
use zstd::stream::raw::{Encoder, InBuffer, Operation, OutBuffer};

const BUDGET: usize = 512 * 1024;

#[test]
fn both_directions_stay_under_512_kib_at_the_defaults() {
    let mut pair = pair(Link::new());
    // Enough text each way to fill every window and buffer.
    for m in log_messages(1, 3000) {
        pair.client.conn.send(&m).unwrap();
        pair.server.conn.send(&m).unwrap();
    }
    pair.drive();
    for side in [&pair.client.conn, &pair.server.conn] {
        let z = side.stack();
        println!(
            "encoder {} B, decoder {} B, both {} B",
            z.encoder_memory(),
            z.decoder_memory(),
            z.memory()
        );
        assert!(z.encoder_memory() > 100_000, "the encoder is in use");
        assert!(z.decoder_memory() > 100_000, "the decoder is in use");
        assert!(z.memory() <= BUDGET, "{} bytes", z.memory());
    }
}

/// The decoder's memory follows the window the peer's frame asks for, up
/// to the limit, and never exceeds what it reserved of the budget: the
/// figures of `ZstdConfig`'s table (windows 2^15, 2^21 and 2^23).
#[test]
fn decoder_memory_follows_the_peer_s_window_within_its_reservation() {
    let text = log_text(2, 200_000);
    let mut sizes = Vec::new();
    for log in [10, 12, 15, 17, 21, 23] {
        let wire = common::zstd_stream(1, Some(log), &[&length_prefixed(&text)]);
        let mut conn = common::conn(ZstdConfig::new());
        let now = Instant::now();
        let mut fed = 0;
        while fed < wire.len() {
            fed += conn.handle_input(now, &wire[fed..]).unwrap();
            while conn.poll_message(now).unwrap().is_some() {}
        }
        let z = conn.stack();
        let (memory, reserved) = (z.decoder_memory(), z.decoder_reserved());
        println!("window 2^{log}: decoder {memory} B, reserved {reserved} B");
        assert!(memory <= reserved, "2^{log}: {memory} > {reserved}");
        // The reservation is zstd's own estimate: close to what it holds.
        assert!(reserved - memory <= reserved / 50 + 4096, "2^{log}");
        sizes.push(memory);
    }
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
    assert!(sizes[2] <= 240 * 1024, "2^15: {}", sizes[2]);
    assert!(sizes[5] <= (8 << 20) + 500 * 1024, "2^23: {}", sizes[5]);
}

fn length_prefixed(m: &[u8]) -> Vec<u8> {
    let mut b = (m.len() as u32).to_be_bytes().to_vec();
    b.extend_from_slice(m);
    b
}

/// A dictionary adds nothing per connection beyond the context it loads into.
#[test]
fn a_shared_dictionary_costs_no_memory_per_connection() {
    let dict = Dictionary::train(&log_messages(3, 2000), 16 * 1024).unwrap();
    let with = ZstdConfig::new().with_dictionary(dict);
    let mut sizes = Vec::new();
    for config in [ZstdConfig::new(), with] {
        let mut pair = netstrata_core::testing::Pair::new(
            common::conn(config.clone()),
            common::conn(config),
            Link::new(),
        );
        for m in log_messages(4, 1000) {
            pair.client.conn.send(&m).unwrap();
        }
        pair.drive();
        let (c, s) = (pair.client.conn.stack(), pair.server.conn.stack());
        sizes.push((c.encoder_memory(), s.decoder_memory()));
    }
    println!("(encoder, decoder) without and with a 16 KiB dictionary: {sizes:?}");
    let ((e0, d0), (e1, d1)) = (sizes[0], sizes[1]);
    assert!(e1 <= e0 + 4096 && d1 <= d0 + 4096, "{sizes:?}");
}

/// Wire bytes of `batches` through our layer, one `Flush::Batch` each.
fn ours(config: ZstdConfig, batches: &[Vec<u8>]) -> usize {
    let mut z = Zstd::with_config(config);
    let mut total = 0;
    for batch in batches {
        let mut down = BytesMut::new();
        z.handle_outbound(Outbound::new(
            Instant::now(),
            &mut BytesMut::from(&batch[..]),
            Flush::Batch,
            &mut down,
        ))
        .unwrap();
        total += down.len();
    }
    total
}

/// Wire bytes of `batches` through zstd's raw streaming API at level 3 with
/// its default parameters, flushed after each batch.
fn level_3_defaults(batches: &[Vec<u8>]) -> usize {
    let mut encoder = Encoder::new(3).unwrap();
    let mut total = 0;
    for batch in batches {
        let mut out = Vec::with_capacity(batch.len() + 1024);
        let mut dst = OutBuffer::around(&mut out);
        let mut src = InBuffer::around(batch);
        while src.pos() < batch.len() {
            encoder.run(&mut src, &mut dst).unwrap();
        }
        while encoder.flush(&mut dst).unwrap() != 0 {}
        total += dst.pos();
    }
    total
}

/// Length-delimited messages of `size` bytes cut from the text, `per` to a batch.
fn batches(text: &[u8], size: usize, per: usize) -> Vec<Vec<u8>> {
    text.chunks(size)
        .collect::<Vec<_>>()
        .chunks(per)
        .map(|msgs| {
            msgs.iter()
                .flat_map(|m| {
                    (m.len() as u32)
                        .to_be_bytes()
                        .into_iter()
                        .chain(m.iter().copied())
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_defaults_keep_95_percent_of_the_level_3_ratio_on_log_lines() {
    let text = log_text(5, 2 << 20);
    let one_line_per_flush: Vec<Vec<u8>> = log_messages(6, 8000)
        .iter()
        .map(|line| length_prefixed(line))
        .collect();
    let cases = [
        ("64 B messages, 64 per batch", batches(&text, 64, 64)),
        ("16 KiB messages, 3 per batch", batches(&text, 16 * 1024, 3)),
        ("one log line per batch", one_line_per_flush),
    ];
    for (name, input) in cases {
        let plain: usize = input.iter().map(Vec::len).sum();
        let (ours, theirs) = (ours(ZstdConfig::new(), &input), level_3_defaults(&input));
        let relative = theirs as f64 / ours as f64;
        println!(
            "{name}: ratio {:.2} vs level-3 defaults {:.2} ({relative:.3}x)",
            plain as f64 / ours as f64,
            plain as f64 / theirs as f64,
        );
        assert!(relative >= 0.95, "{name}: {relative:.3}x of level 3");
    }
}

#[test]
fn incompressible_data_costs_little_more_than_its_size() {
    let mut rng = common::Rng::new(7);
    let input: Vec<Vec<u8>> = (0..64).map(|_| rng.bytes(16 * 1024)).collect();
    let plain: usize = input.iter().map(Vec::len).sum();
    let wire = ours(ZstdConfig::new(), &input);
    // Raw blocks: a 3-byte header per 16 KiB block and the frame header.
    assert!(wire <= plain + plain / 1000 + 64, "{wire} for {plain}");
}
