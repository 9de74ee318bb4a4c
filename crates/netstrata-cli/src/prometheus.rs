//! `--metrics ADDR`: the figures of the reactor's loops and the tool's own
//! (shaped traffic, zstd decoder memory), served in Prometheus text format
//! by metrics-exporter-prometheus's HTTP listener. docs/tool.md lists them.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusBuilder;
use netstrata_cli::stack::StackOptions;

/// Serves the process's figures on `addr` (port 0 picks one) and returns
/// the address it listens on.
pub(crate) fn serve(addr: SocketAddr) -> Result<SocketAddr, String> {
    // The exporter binds by itself and does not say where: find a free port
    // first when asked for any.
    let addr = match addr.port() {
        0 => TcpListener::bind(addr)
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("--metrics: cannot listen on {addr}: {e}"))?,
        _ => addr,
    };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| format!("--metrics: cannot serve on {addr}: {e}"))?;
    Ok(addr)
}

/// Publishes `stack`'s shaped traffic and zstd decoder budget, those of its
/// layers that are on, every `every` (the loops publish theirs on the same
/// period, [`netstrata_reactor::LoopConfig::with_metrics_every`]) from a
/// thread of its own for as long as the process runs.
pub(crate) fn publish_stack_figures(stack: StackOptions, every: Duration) {
    if stack.rate.is_none() && stack.zstd.is_none() {
        return;
    }
    std::thread::spawn(move || {
        loop {
            publish(&stack, Instant::now());
            std::thread::sleep(every);
        }
    });
}

fn publish(stack: &StackOptions, now: Instant) {
    if let Some(traffic) = stack.traffic(now) {
        for (direction, t) in [("in", traffic.inbound), ("out", traffic.outbound)] {
            metrics::counter!("netstrata_shaped_bytes_total", "direction" => direction)
                .absolute(t.total_bytes);
            metrics::gauge!("netstrata_shaped_throughput_bytes_per_second", "direction" => direction)
                .set(t.throughput as f64);
            metrics::gauge!("netstrata_shaped_peak_throughput_bytes_per_second", "direction" => direction)
                .set(t.peak_throughput as f64);
        }
    }
    if let Some(zstd) = &stack.zstd {
        let budget = zstd.decoder_budget();
        metrics::gauge!("netstrata_zstd_decoder_memory_bytes").set(budget.in_use() as f64);
        metrics::gauge!("netstrata_zstd_decoder_memory_capacity_bytes")
            .set(budget.capacity() as f64);
        metrics::counter!("netstrata_zstd_decoders_refused_total").absolute(budget.refused());
    }
}
