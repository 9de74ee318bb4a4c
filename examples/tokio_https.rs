//! HTTPS on hyper: netstrata's TLS layer under a hyper HTTP/1.1 server and
//! client, through `LayeredStream` on tokio.
//!
//! ```text
//! cargo run --example tokio_https --features tokio,dev-certs
//! cargo run --example tokio_https --features tokio,dev-certs -- --serve 127.0.0.1:8443 --ca-out ca.pem
//!     then: curl --cacert ca.pem https://localhost:8443/
//! ```
//!
//! Each accepted TCP connection becomes a `LayeredStream` over a one-layer
//! `Stack` (the TLS server layer), and hyper serves HTTP/1.1 on it through
//! hyper-util's `TokioIo`, as it would on a `TcpStream`:
//!
//! ```text
//!   hyper ─▶ TokioIo ─▶ LayeredStream ─▶ [ Tls ] ─▶ TcpStream
//! ```
//!
//! The certificate for `localhost` comes from a throw-away development CA
//! (`netstrata::tls::dev_certs`, the facade's `dev-certs` feature). The
//! page names the TLS version and cipher suite the connection negotiated,
//! read from the stack once the request's first bytes are up.
//!
//! With no arguments, one process plays both ends on a free loopback port:
//! a client that does not speak TLS is refused (the server logs why on
//! stderr and goes on), then a hyper client over its own `LayeredStream`,
//! trusting the development CA, fetches the page; the run checks the page
//! and what the server counted, and stops the server.
//!
//! With `--serve ADDR --ca-out FILE` it writes the CA certificate (PEM) to
//! FILE, prints `listening on https://localhost:PORT` and serves until
//! killed. Errors on one connection are logged on stderr and end that
//! connection only.

use std::convert::Infallible;
use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::{Pin, pin};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use netstrata::Stack;
use netstrata::tls::dev_certs::DevCa;
use netstrata::tls::rustls::{ClientConfig, ServerConfig};
use netstrata::tls::{ClientOptions, ServerOptions, Tls};
use netstrata::tokio::LayeredStream;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

type BoxError = Box<dyn Error + Send + Sync>;

/// The page's first line; the client (and CI's curl) check for it.
const GREETING: &str = "hello from netstrata over TLS on hyper\n";

/// How long a connection may take to complete the TLS handshake and send
/// its request's first bytes. The TLS layer's own handshake timeout (10 s)
/// bounds the handshake alone.
const FIRST_REQUEST: Duration = Duration::from_secs(10);

/// How long hyper waits for the rest of a request's headers.
const HEADER_READ: Duration = Duration::from_secs(10);

const USAGE: &str = "\
usage: tokio_https                              serve and fetch one page, then exit
       tokio_https --serve ADDR --ca-out FILE   serve on ADDR (IP:PORT, port 0 picks one)
                                                until killed; the CA certificate, PEM, in FILE";

/// What the command line asked for.
#[derive(Debug)]
enum Mode {
    /// Both ends in this process, then exit.
    Demo,
    /// Serve until killed.
    Serve { addr: SocketAddr, ca_out: PathBuf },
    /// Print the usage.
    Help,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let (mut addr, mut ca_out) = (None, None);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--serve" => {
                let value = value()?;
                let parsed = value
                    .parse()
                    .map_err(|_| format!("--serve {value:?}: not an IP:PORT address"))?;
                addr = Some(parsed);
            }
            "--ca-out" => ca_out = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Ok(Mode::Help),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    match (addr, ca_out) {
        (None, None) => Ok(Mode::Demo),
        (Some(addr), Some(ca_out)) => Ok(Mode::Serve { addr, ca_out }),
        (Some(_), None) => Err("--serve needs --ca-out FILE (where clients find the CA)".into()),
        (None, Some(_)) => Err("--ca-out goes with --serve ADDR".into()),
    }
}

fn main() -> ExitCode {
    let mode = match parse_args(std::env::args().skip(1)) {
        Ok(mode) => mode,
        Err(e) => {
            eprintln!("tokio_https: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let run: Pin<Box<dyn Future<Output = Result<(), BoxError>>>> = match mode {
        Mode::Demo => Box::pin(demo()),
        Mode::Serve { addr, ca_out } => Box::pin(serve_until_killed(addr, ca_out)),
        Mode::Help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BoxError::from)
        .and_then(|runtime| runtime.block_on(run));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio_https: {}", report(&*e));
            ExitCode::FAILURE
        }
    }
}

/// A CA, the server's configuration with a certificate for `localhost`
/// signed by it, and a client configuration trusting it alone.
fn tls_configs() -> Result<(DevCa, Arc<ServerConfig>, Arc<ClientConfig>), BoxError> {
    let ca = DevCa::new()?;
    let server = ServerOptions::new()
        .with_identity(ca.issue(&["localhost"])?.identity())
        .build()?;
    let client = ClientOptions::new(ca.roots()).build()?;
    Ok((ca, server, client))
}

async fn serve_until_killed(addr: SocketAddr, ca_out: PathBuf) -> Result<(), BoxError> {
    let (ca, server_config, _) = tls_configs()?;
    std::fs::write(&ca_out, ca.cert_pem())
        .map_err(|e| format!("writing the CA certificate to {}: {e}", ca_out.display()))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("binding {addr}: {e}"))?;
    let port = listener.local_addr()?.port();
    println!(
        "listening on https://localhost:{port} (CA certificate in {})",
        ca_out.display()
    );
    // SIGTERM and SIGINT end the process: nothing is kept to save.
    serve(listener, server_config, std::future::pending()).await?;
    Ok(())
}

async fn demo() -> Result<(), BoxError> {
    let (_ca, server_config, client_config) = tls_configs()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, server_config, async {
        let _ = stopped.await;
    }));

    println!("client: plain HTTP to the TLS server (refused; the server logs why on stderr)");
    plain_request(addr).await?;

    let page = fetch(addr, client_config).await?;
    print!("client: GET / over TLS:\n{page}");
    if !page.starts_with(GREETING) || !page.contains("TLSv1_3") {
        return Err(format!("unexpected page {page:?}").into());
    }

    let _ = stop.send(());
    let tally = server.await??;
    println!(
        "server: stopped; {} connection(s) served, {} failed",
        tally.served, tally.failed
    );
    if (tally.served, tally.failed) != (1, 1) {
        return Err("the server should have served one connection and refused one".into());
    }
    Ok(())
}

/// A client that speaks HTTP without TLS: it sends a request and reads
/// until the server hangs up.
async fn plain_request(addr: SocketAddr) -> Result<(), BoxError> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    // The end may come as a reset: either way the server is done with it.
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    Ok(())
}

/// GET / with a hyper client over a client `LayeredStream`, verifying the
/// server's certificate for `localhost`; the body as text.
async fn fetch(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<String, BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    let stack = Stack::new((Tls::client(config, "localhost")?,));
    let io = TokioIo::new(LayeredStream::new(tcp, stack));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    // The connection runs beside the requests; it ends once `sender` is
    // dropped, after shutting the stream down (close_notify, then FIN).
    let connection = tokio::spawn(connection);

    let request = Request::get("/")
        .header(header::HOST, "localhost")
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    drop(sender);
    connection.await??;
    if status != StatusCode::OK {
        return Err(format!("GET / answered {status}").into());
    }
    Ok(String::from_utf8(body.to_vec())?)
}

/// How the server's connections ended.
#[derive(Debug, Default)]
struct Tally {
    served: u64,
    failed: u64,
}

/// Accepts connections on `listener` until `stop` completes, each in a
/// task of its own; then asks the open ones to finish their current
/// request, waits for them, and says how they ended.
async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    stop: impl Future<Output = ()>,
) -> Result<Tally, BoxError> {
    let mut stop = pin!(stop);
    let (closing, closing_seen) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut tally = Tally::default();
    loop {
        tokio::select! {
            () = &mut stop => break,
            Some(ended) = connections.join_next() => tally.note(ended),
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let config = Arc::clone(&config);
                    let closing = closing_seen.clone();
                    connections.spawn(async move {
                        let result = connection(tcp, config, closing).await;
                        if let Err(e) = &result {
                            eprintln!("server: connection from {peer}: {}", report(&**e));
                        }
                        result
                    });
                }
                Err(e) => {
                    eprintln!("server: accept: {e}");
                    // Most likely out of file descriptors: wait for a
                    // connection to give one back rather than spin.
                    if let Some(ended) = connections.join_next().await {
                        tally.note(ended);
                    }
                }
            },
        }
    }
    let _ = closing.send(true);
    while let Some(ended) = connections.join_next().await {
        tally.note(ended);
    }
    Ok(tally)
}

impl Tally {
    fn note(&mut self, ended: Result<Result<(), BoxError>, tokio::task::JoinError>) {
        match ended {
            Ok(Ok(())) => self.served += 1,
            Ok(Err(_)) => self.failed += 1,
            Err(e) => {
                eprintln!("server: a connection's task failed: {e}");
                self.failed += 1;
            }
        }
    }
}

/// One connection: TLS under hyper's HTTP/1.1, until the client is done
/// or the server closes.
async fn connection(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    mut closing: watch::Receiver<bool>,
) -> Result<(), BoxError> {
    let stack = Stack::new((Tls::server(config)?,));
    // The handshake runs as the stream is read: once the request's first
    // bytes are up, TLS has negotiated and the page can say what.
    let mut stream = BufReader::new(LayeredStream::new(tcp, stack));
    tokio::time::timeout(FIRST_REQUEST, stream.fill_buf())
        .await
        .map_err(|_| format!("no request within {FIRST_REQUEST:?}"))??;
    let page = Bytes::from(page(&stream.get_ref().stack().layers().0));

    let service = service_fn(move |request| answer(request, page.clone()));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ);
    let mut served = pin!(http.serve_connection(TokioIo::new(stream), service));
    tokio::select! {
        result = served.as_mut() => return Ok(result?),
        _ = closing.changed() => served.as_mut().graceful_shutdown(),
    }
    Ok(served.await?)
}

/// The page, with what this connection's TLS negotiated.
fn page(tls: &Tls) -> String {
    let version = tls.protocol_version().map(|v| format!("{v:?}"));
    let suite = tls.cipher_suite().map(|s| format!("{:?}", s.suite()));
    format!(
        "{GREETING}tls: {}, {}\n",
        version.as_deref().unwrap_or("(no version)"),
        suite.as_deref().unwrap_or("(no cipher suite)")
    )
}

async fn answer(
    request: Request<Incoming>,
    page: Bytes,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = if request.uri().path() == "/" {
        (StatusCode::OK, page)
    } else {
        (StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n"))
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// `e` and its sources, each once: an `io::Error` from the stack displays
/// its layer's error and has it as its source too.
fn report(e: &(dyn Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.ends_with(&next) {
            text = format!("{text}: {next}");
        }
        source = e.source();
    }
    text
}
