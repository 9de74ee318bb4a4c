//! zstd layer benchmark (placeholder).
fn main() {}
