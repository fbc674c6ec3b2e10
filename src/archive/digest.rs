//! SHA-256 and byte counting on the way through, so no file is ever read a
//! second time just to hash it.

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
}
