//! CPU seconds and output size of the archive writer's gzip at each level, against
//! the single-member zlib-rs gzip bunker wrote before: the measurement behind
//! `Compression::default_level`.
//!
//! `cargo run --example gzip_levels -- IMAGE.tar [LEVEL...]` (default levels 3 4 5 6)

use std::io::{self, Read, Write};

use gzp::ZWriter;
use gzp::deflate::{Gzip, Mgzip};
use gzp::par::compress::ParCompressBuilder;

struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0 += bytes.len() as u64;
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Makes a fresh compressor writing to a byte counter.
type MakeWriter = Box<dyn Fn() -> Box<dyn ZWriter<Counter>>>;

fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn compress(input: &[u8], mut writer: Box<dyn ZWriter<Counter>>) -> anyhow::Result<u64> {
    for chunk in input.chunks(256 << 10) {
        writer.write_all(chunk)?;
    }
    Ok(writer.finish()?.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((path, levels)) = args.split_first() else {
        anyhow::bail!("usage: gzip_levels IMAGE.tar [LEVEL...]");
    };
    let levels: Vec<u32> = if levels.is_empty() {
        vec![3, 4, 5, 6]
    } else {
        levels
            .iter()
            .map(|level| level.parse())
            .collect::<Result<_, _>>()?
    };
    let mut input = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut input)?;
    println!("{path}: {} bytes, 2 threads", input.len());
    let mut runs: Vec<(String, MakeWriter)> = vec![(
        "Pgz zlib-rs level 5 (before)".into(),
        Box::new(|| {
            Box::new(
                ParCompressBuilder::<Gzip>::new()
                    .num_threads(2)
                    .unwrap()
                    .compression_level(flate2::Compression::new(5))
                    .from_writer(Counter(0)),
            )
        }),
    )];
    for level in levels {
        runs.push((
            format!("Mgzip libdeflate level {level}, 1 MiB blocks"),
            Box::new(move || {
                Box::new(
                    ParCompressBuilder::<Mgzip>::new()
                        .num_threads(2)
                        .and_then(|builder| builder.buffer_size(1 << 20))
                        .unwrap()
                        .compression_level(flate2::Compression::new(level))
                        .from_writer(Counter(0)),
                )
            }),
        ));
    }
    for (name, make) in runs {
        let started = cpu_seconds();
        let size = compress(&input, make())?;
        println!("{name}: {size} bytes, {:.1} CPU-s", cpu_seconds() - started);
    }
    Ok(())
}
