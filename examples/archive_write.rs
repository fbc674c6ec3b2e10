//! Writes a `docker save` tar file through the archive writer and prints the
//! throughput: the measurement behind the writer's performance notes.
//!
//! `cargo run --release --example archive_write -- IMAGE.tar OUT.tar.gz [gzip|zstd|none] [LEVEL] [THREADS] [REFERENCE]`

use std::time::Instant;

use bunker::archive::{Compression, ExpectedImage, WriteOptions, write_archive};
use clap::ValueEnum;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, rest @ ..] = args.as_slice() else {
        anyhow::bail!(
            "usage: archive_write IMAGE.tar OUT [gzip|zstd|none] [LEVEL] [THREADS] [REFERENCE]"
        );
    };
    let compression = match rest.first() {
        Some(name) => Compression::from_str(name, true).map_err(anyhow::Error::msg)?,
        None => Compression::Gzip,
    };
    let options = WriteOptions {
        compression,
        level: rest.get(1).map(|level| level.parse()).transpose()?,
        threads: rest
            .get(2)
            .map(|threads| threads.parse())
            .transpose()?
            .unwrap_or(0),
        expected: ExpectedImage {
            reference: rest.get(3).cloned(),
            image_id: None,
        },
    };
    let file = tokio::fs::File::open(input).await?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 << 10);
    let started = Instant::now();
    let written = write_archive(stream, std::path::Path::new(output), &options, |_| {}).await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{compression} level {:?}: {} MB tar -> {} MB in {seconds:.2} s = {:.1} MB/s (tar sha256 {}, {} layers)",
        options.level,
        written.uncompressed_size / 1_000_000,
        written.size / 1_000_000,
        written.uncompressed_size as f64 / 1e6 / seconds,
        written.uncompressed_sha256,
        written.image.diff_ids.len()
    );
    Ok(())
}
