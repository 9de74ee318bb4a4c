//! netstrata's layers on tokio against the tokio ecosystem's own crates:
//! same runtime, same client, same run, CPU per message.
//!
//! Each case runs one connection per variant: a client and an echo server
//! on one `current_thread` tokio runtime, joined by in-memory pipes
//! (`tokio::io::duplex`, 64 KiB each way). The client keeps a fixed number
//! of messages in flight, flushes when it can write no more, and checks
//! every echoed byte; the server writes back what it reads and flushes.
//! Both ends run in this process on one thread, so the process's CPU time
//! (`getrusage`) per echoed message is what both ends' layers cost, plus
//! the runtime and the pipes, which are the same for every variant.
//!
//! Variants (ours first, then the baseline its ratio is taken to):
//! - `tls`: `LayeredStream` over a `Tls` layer vs tokio-rustls, the same
//!   rustls configurations (TLS 1.3, aws-lc-rs, a development certificate);
//! - `zstd-w15`: `LayeredStream` over `Zstd` at its defaults (level 3, a
//!   2^15 window) vs async-compression's `ZstdEncoder`/`ZstdDecoder` at
//!   level 3 with `window_log(15)`;
//! - `zstd-default`: both at async-compression's defaults, zstd's level-3
//!   parameters (window 2^21, hash 2^17, chain 2^16, 128 KiB blocks);
//! - `tls-zstd`: one `LayeredStream` over `Zstd` (2^15) above `Tls` vs
//!   async-compression (2^15) over tokio-rustls, stacked as a tokio user
//!   stacks them (the TLS stream split into the decoder's and the
//!   encoder's halves).
//!
//! Each at 64 B (16 in flight) and 16 KiB (4 in flight) messages of
//! English-like text. Variants of a case alternate in every round, in
//! rotating order; medians of the rounds are reported, with the ratio of
//! ours to the baseline (below 1: ours costs less), and the wire bytes the
//! client's layers wrote per message (what compression saved).
//!
//! `cargo bench -p netstrata-tokio --bench layers [-- --secs 2 --rounds 5 --only tls,zstd-w15-16k --json]`
//!
//! Flags: `--secs` measured per variant per round (after a warm-up of a
//! tenth of it and at least 4 MiB each way: the handshake, the buffers,
//! the zstd windows), `--rounds`,
//! `--only` case names or groups (`--list` prints them), `--json` (the
//! tables go to stderr, one JSON document to stdout), `--smoke` (every
//! case once, briefly: checks that it runs), `--client-buffer` (the
//! client writes through a tokio `BufWriter`, one write per flush, as
//! tokio-util's `Framed` does), `--alone ours|baseline` (one side only,
//! no ratio: for a profiler).

mod support;

use std::future::Future;
use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_compression::Level;
use async_compression::tokio::bufread::ZstdDecoder;
use async_compression::tokio::write::ZstdEncoder;
use async_compression::zstd::CParameter;
use netstrata_core::Stack;
use netstrata_tls::Tls;
use netstrata_tls::dev_certs::DevCa;
use netstrata_tls::rustls::{ClientConfig, ServerConfig};
use netstrata_tls::{ClientOptions, ServerOptions};
use netstrata_tokio::LayeredStream;
use netstrata_zstd::{Zstd, ZstdConfig};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};

use support::exchange::{Load, Plan, Sample, echo, session};
use support::pipe::{End, connection};
use support::report;
use support::text::Corpus;

/// A comparison: which layers, ours and the tokio ecosystem's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Tls,
    ZstdW15,
    ZstdDefault,
    TlsZstd,
}

impl Group {
    const ALL: [Self; 4] = [Self::Tls, Self::ZstdW15, Self::ZstdDefault, Self::TlsZstd];

    fn name(self) -> &'static str {
        match self {
            Self::Tls => "tls",
            Self::ZstdW15 => "zstd-w15",
            Self::ZstdDefault => "zstd-default",
            Self::TlsZstd => "tls-zstd",
        }
    }

    /// Ours first, then the baseline.
    fn variants(self) -> [Variant; 2] {
        match self {
            Self::Tls => [Variant::OursTls, Variant::TokioRustls],
            Self::ZstdW15 => [Variant::OursZstd(W15), Variant::AsyncZstd(W15)],
            Self::ZstdDefault => [Variant::OursZstd(LEVEL3), Variant::AsyncZstd(LEVEL3)],
            Self::TlsZstd => [Variant::OursTlsZstd, Variant::TokioRustlsAsyncZstd],
        }
    }
}

/// One case: a group at one message size.
#[derive(Debug, Clone, Copy)]
struct Case {
    group: Group,
    load: Load,
}

impl Case {
    fn name(&self) -> String {
        let size = match self.load.size {
            64 => "64".to_string(),
            n => format!("{}k", n / 1024),
        };
        format!("{}-{size}", self.group.name())
    }

    /// The most ours/baseline may be: no slower than tokio-rustls, and
    /// zstd at least 5% cheaper than async-compression on 16 KiB text.
    fn goal(&self) -> Option<f64> {
        match (self.group, self.load.size) {
            (Group::Tls, _) => Some(1.0),
            (Group::ZstdW15 | Group::ZstdDefault, 16384) => Some(0.95),
            _ => None,
        }
    }
}

/// The zstd settings of a comparison: ours at its defaults (level 3, a
/// 2^15 window) and async-compression told the same window, or both at
/// zstd's level-3 defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ZstdParams {
    Window15,
    Level3Defaults,
}

const W15: ZstdParams = ZstdParams::Window15;
const LEVEL3: ZstdParams = ZstdParams::Level3Defaults;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    OursTls,
    TokioRustls,
    OursZstd(ZstdParams),
    AsyncZstd(ZstdParams),
    OursTlsZstd,
    TokioRustlsAsyncZstd,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Self::OursTls => "netstrata tls",
            Self::TokioRustls => "tokio-rustls",
            Self::OursZstd(_) => "netstrata zstd",
            Self::AsyncZstd(_) => "async-compression",
            Self::OursTlsZstd => "netstrata zstd+tls",
            Self::TokioRustlsAsyncZstd => "async-compr. + tokio-rustls",
        }
    }
}

/// The TLS configurations both TLS variants use.
struct Tls13 {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl Tls13 {
    fn new() -> Self {
        let ca = DevCa::new().expect("CA");
        let leaf = ca.issue(&["localhost"]).expect("certificate");
        Self {
            server: ServerOptions::new()
                .with_identity(leaf.identity())
                .build()
                .expect("server TLS"),
            client: ClientOptions::new(ca.roots()).build().expect("client TLS"),
        }
    }

    fn ours_client(&self) -> io::Result<Tls> {
        Tls::client(Arc::clone(&self.client), "localhost").map_err(io::Error::other)
    }

    fn ours_server(&self) -> io::Result<Tls> {
        Tls::server(Arc::clone(&self.server)).map_err(io::Error::other)
    }

    fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(Arc::clone(&self.client))
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.server))
    }
}

/// Our zstd layer at `params`.
fn ours_zstd(params: ZstdParams) -> Zstd {
    Zstd::with_config(match params {
        ZstdParams::Window15 => ZstdConfig::new(),
        // zstd's level-3 row for streams of unknown size, what
        // async-compression's encoder gets at its defaults.
        ZstdParams::Level3Defaults => ZstdConfig::new()
            .with_window_log(21)
            .with_hash_log(17)
            .with_chain_log(16)
            .with_block_size(128 * 1024),
    })
}

/// async-compression's decoder over `rx` and encoder over `tx`, at
/// `params`, as one stream.
fn async_zstd<R, W>(rx: R, tx: W, params: ZstdParams) -> impl AsyncRead + AsyncWrite + Unpin
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let decoder = ZstdDecoder::new(BufReader::new(rx));
    let encoder = match params {
        ZstdParams::Window15 => ZstdEncoder::with_quality_and_params(
            tx,
            Level::Precise(3),
            &[CParameter::window_log(15)],
        ),
        ZstdParams::Level3Defaults => ZstdEncoder::new(tx),
    };
    tokio::io::join(decoder, encoder)
}

/// Everything the variants share for a run.
struct Bench {
    /// Made when a TLS case first needs it (a CA and a key are costly to
    /// generate, a profile of the zstd cases need not show them).
    tls: OnceLock<Tls13>,
    corpus: Corpus,
    plan: Plan,
}

impl Bench {
    /// One connection of `variant` under `load`.
    async fn sample(&self, variant: Variant, load: Load) -> io::Result<Sample> {
        let (client, server, wire) = connection();
        let tls = || self.tls.get_or_init(Tls13::new);
        match variant {
            Variant::OursTls => {
                let stream =
                    LayeredStream::new(client.joined(), Stack::new((tls().ours_client()?,)));
                let serve = echo(LayeredStream::new(
                    server.joined(),
                    Stack::new((tls().ours_server()?,)),
                ));
                self.run(async { Ok(stream) }, serve, &wire, load).await
            }
            Variant::TokioRustls => {
                let acceptor = tls().acceptor();
                let serve = async move { echo(acceptor.accept(server.joined()).await?).await };
                let name = "localhost".try_into().expect("name");
                let connect = tls().connector().connect(name, client.joined());
                self.run(connect, serve, &wire, load).await
            }
            Variant::OursZstd(params) => {
                let stream = LayeredStream::new(client.joined(), Stack::new((ours_zstd(params),)));
                let serve = echo(LayeredStream::new(
                    server.joined(),
                    Stack::new((ours_zstd(params),)),
                ));
                self.run(async { Ok(stream) }, serve, &wire, load).await
            }
            Variant::AsyncZstd(params) => {
                let End { rx, tx } = client;
                let stream = async_zstd(rx, tx, params);
                let End { rx, tx } = server;
                let serve = echo(async_zstd(rx, tx, params));
                self.run(async { Ok(stream) }, serve, &wire, load).await
            }
            Variant::OursTlsZstd => {
                let ours = |tls: Tls| Stack::new((ours_zstd(W15), tls));
                let stream = LayeredStream::new(client.joined(), ours(tls().ours_client()?));
                let serve = echo(LayeredStream::new(
                    server.joined(),
                    ours(tls().ours_server()?),
                ));
                self.run(async { Ok(stream) }, serve, &wire, load).await
            }
            Variant::TokioRustlsAsyncZstd => {
                let acceptor = tls().acceptor();
                let serve = async move {
                    let tls = acceptor.accept(server.joined()).await?;
                    let (rx, tx) = tokio::io::split(tls);
                    echo(async_zstd(rx, tx, W15)).await
                };
                let connector = tls().connector();
                let connect = async move {
                    let name = "localhost".try_into().expect("name");
                    let tls = connector.connect(name, client.joined()).await?;
                    let (rx, tx) = tokio::io::split(tls);
                    Ok(async_zstd(rx, tx, W15))
                };
                self.run(connect, serve, &wire, load).await
            }
        }
    }

    async fn run<C, F, V>(
        &self,
        connect: F,
        serve: V,
        wire: &AtomicU64,
        load: Load,
    ) -> io::Result<Sample>
    where
        C: AsyncRead + AsyncWrite + Unpin,
        F: Future<Output = io::Result<C>>,
        V: Future<Output = io::Result<()>> + Send + 'static,
    {
        session(connect, serve, wire, &self.corpus, load, self.plan).await
    }
}

fn main() {
    let args = report::Args::parse();
    if args.list {
        for case in cases() {
            println!("{}", case.name());
        }
        return;
    }
    let selected: Vec<Case> = cases()
        .into_iter()
        .filter(|c| args.selects(&c.name(), c.group.name()))
        .collect();
    if selected.is_empty() {
        eprintln!("layers: no case matches --only (--list prints them)");
        std::process::exit(2);
    }
    let bench = Bench {
        tls: OnceLock::new(),
        corpus: Corpus::new(16 * 1024),
        plan: Plan {
            warm_up: Duration::from_secs_f64((args.secs / 10.0).max(0.01)),
            // More than the corpus' span, so the largest zstd window (2^21)
            // has been filled before measuring.
            warm_up_bytes: if args.smoke { 0 } else { 4 << 20 },
            secs: Duration::from_secs_f64(args.secs),
            client_buffer: args.client_buffer,
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut out = report::Report::new(&args);
    for case in selected {
        let variants = case.group.variants();
        let sample = |variant: Variant| {
            runtime
                .block_on(bench.sample(variant, case.load))
                .unwrap_or_else(|e| panic!("{} {}: {e}", case.name(), variant.name()))
        };
        if let Some(i) = args.alone {
            for _ in 0..args.rounds {
                out.alone(
                    &case.name(),
                    case.load,
                    variants[i].name(),
                    sample(variants[i]),
                );
            }
            continue;
        }
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); variants.len()];
        for round in 0..args.rounds {
            for k in 0..variants.len() {
                let i = (round + k) % variants.len();
                samples[i].push(sample(variants[i]));
            }
        }
        let names: Vec<&str> = variants.iter().map(|v| v.name()).collect();
        out.case(&case.name(), case.load, case.goal(), &names, &samples);
    }
    out.finish();
}

/// Every case, in the order they run.
fn cases() -> Vec<Case> {
    let sizes = [
        Load {
            size: 64,
            depth: 16,
        },
        Load {
            size: 16 * 1024,
            depth: 4,
        },
    ];
    Group::ALL
        .iter()
        .flat_map(|&group| sizes.iter().map(move |&load| Case { group, load }))
        .collect()
}
