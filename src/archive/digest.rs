//! SHA-256 and byte counting on the way through, so no file is ever read a
//! second time just to hash it; [`DecodedDigest`] hashes what a compressed
//! stream decompresses to (a layer's diff ID), fed chunk by chunk.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

/// A running SHA-256 plus the number of bytes hashed.
#[derive(Clone, Default)]
pub struct Hashed {
    hasher: Sha256,
    size: u64,
}

impl Hashed {
    pub fn new() -> Hashed {
        Hashed::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// Counts bytes without hashing them (their digest is known another way).
    pub fn count(&mut self, bytes: usize) {
        self.size += bytes as u64;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The lower-case hex digest (no `sha256:` prefix) and the byte count.
    pub fn finish(self) -> (String, u64) {
        (hex_lower(&self.hasher.finalize()), self.size)
    }
}

/// Lower-case hex of a byte string.
pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    text
}

/// The hex SHA-256 of a byte string.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_lower(&Sha256::digest(bytes))
}

/// A writer that hashes and counts everything it passes on.
pub struct HashingWriter<W> {
    inner: W,
    hashed: Hashed,
    /// False when only the byte count is wanted.
    hashing: bool,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hashed: Hashed::new(),
            hashing: true,
        }
    }

    /// Counts what it passes on without hashing it: for bytes already hashed
    /// upstream, where a second SHA-256 pass would only cost CPU.
    pub fn counting(inner: W) -> HashingWriter<W> {
        HashingWriter {
            hashing: false,
            ..HashingWriter::new(inner)
        }
    }

    pub fn into_parts(self) -> (W, Hashed) {
        (self.inner, self.hashed)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(bytes)?;
        if self.hashing {
            self.hashed.update(&bytes[..written]);
        } else {
            self.hashed.count(written);
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hashed: Hashed,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hashed: Hashed::new(),
        }
    }

    pub fn hashed(&self) -> &Hashed {
        &self.hashed
    }

    pub fn into_hashed(self) -> Hashed {
        self.hashed
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hashed.update(&buffer[..read]);
        Ok(read)
    }
}

/// A write sink that only hashes.
#[derive(Default)]
struct HashSink(Hashed);

impl Write for HashSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The SHA-256 of what a gzip or zstd stream decompresses to, fed in pieces of
/// any size; the compression is taken from the stream's first bytes. Memory stays
/// at the decoder's window whatever the stream's size.
pub struct DecodedDigest {
    state: DecodeState,
}

enum DecodeState {
    /// Fewer bytes than a magic number so far.
    Head(Vec<u8>),
    Gzip(Box<flate2::write::MultiGzDecoder<HashSink>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, HashSink>>),
    /// Neither gzip nor zstd: nothing to decompress.
    NotCompressed,
    Failed(String),
}

const MAGIC_BYTES: usize = 4;

impl Default for DecodedDigest {
    fn default() -> Self {
        DecodedDigest::new()
    }
}

impl DecodedDigest {
    pub fn new() -> DecodedDigest {
        DecodedDigest {
            state: DecodeState::Head(Vec::new()),
        }
    }

    /// Feeds the next compressed bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        if let DecodeState::Head(head) = &mut self.state {
            head.extend_from_slice(bytes);
            if head.len() >= MAGIC_BYTES {
                let head = std::mem::take(head);
                self.start(&head);
            }
            return;
        }
        self.write(bytes);
    }

    fn start(&mut self, head: &[u8]) {
        self.state = if head.starts_with(&[0x1f, 0x8b]) {
            DecodeState::Gzip(Box::new(flate2::write::MultiGzDecoder::new(
                HashSink::default(),
            )))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            match zstd::stream::write::Decoder::new(HashSink::default()) {
                Ok(decoder) => DecodeState::Zstd(Box::new(decoder)),
                Err(error) => DecodeState::Failed(error.to_string()),
            }
        } else {
            DecodeState::NotCompressed
        };
        self.write(head);
    }

    fn write(&mut self, bytes: &[u8]) {
        let written = match &mut self.state {
            DecodeState::Gzip(decoder) => decoder.write_all(bytes),
            DecodeState::Zstd(decoder) => decoder.write_all(bytes),
            _ => Ok(()),
        };
        if let Err(error) = written {
            self.state = DecodeState::Failed(error.to_string());
        }
    }

    /// The hex SHA-256 and size of the decompressed bytes; `Ok(None)` when the
    /// stream is not compressed; `Err` when it does not decompress.
    pub fn finish(self) -> Result<Option<(String, u64)>, String> {
        let state = match self.state {
            DecodeState::Head(head) => {
                let mut short = DecodedDigest::new();
                short.start(&head);
                short.state
            }
            state => state,
        };
        match state {
            DecodeState::Head(_) | DecodeState::NotCompressed => Ok(None),
            DecodeState::Failed(reason) => Err(reason),
            DecodeState::Gzip(decoder) => decoder
                .finish()
                .map(|sink| Some(sink.0.finish()))
                .map_err(|error| error.to_string()),
            DecodeState::Zstd(mut decoder) => match decoder.flush() {
                Ok(()) => Ok(Some(decoder.into_inner().0.finish())),
                Err(error) => Err(error.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_values() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(b"ab").unwrap();
        writer.write_all(b"c").unwrap();
        let (bytes, hashed) = writer.into_parts();
        assert_eq!(bytes, b"abc");
        assert_eq!(hashed.finish(), (sha256_hex(b"abc"), 3));
        let mut reader = HashingReader::new(&b"abc"[..]);
        io::copy(&mut reader, &mut io::sink()).unwrap();
        assert_eq!(reader.into_hashed().finish(), (sha256_hex(b"abc"), 3));
    }

    #[test]
    fn compressed_streams_hash_to_their_content_in_any_pieces() {
        let content: Vec<u8> = (0..200_000u32).map(|n| (n % 251) as u8).collect();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&content).unwrap();
        let gzip = gzip.finish().unwrap();
        let zstd = zstd::encode_all(&content[..], 1).unwrap();
        let expected = (sha256_hex(&content), content.len() as u64);
        for compressed in [&gzip, &zstd] {
            for piece in [1, 3, 4096] {
                let mut digest = DecodedDigest::new();
                for chunk in compressed.chunks(piece) {
                    digest.update(chunk);
                }
                assert_eq!(digest.finish(), Ok(Some(expected.clone())), "piece {piece}");
            }
        }
        let mut plain = DecodedDigest::new();
        plain.update(&content);
        assert_eq!(plain.finish(), Ok(None));
        let mut broken = DecodedDigest::new();
        let mut damaged = gzip.clone();
        damaged[gzip.len() / 2] ^= 0x55;
        broken.update(&damaged);
        assert_ne!(broken.finish(), Ok(Some(expected)));
    }
}
