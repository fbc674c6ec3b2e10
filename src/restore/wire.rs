//! What a load sends to the engine: the archive file's own compressed bytes, the
//! decompressed tar, or the tar recompressed with a fast level.
//!
//! Every engine's `docker load` reads gzip; engines from 23.0 on also read zstd
//! ([`LoadFormats`]). By default the file travels as stored whenever the engine
//! reads its format: a third of the tar's bytes over SSH, and no decompression on
//! the workstation. Measured on this machine with a 459 MB tar (161.6 MB gzip,
//! Docker 20.10, which decompresses with Go's reader): over SSH on loopback 17.3
//! and 18.2 s as stored against 38.6 s for the tar; even on the local socket 20.1
//! and 16.4 s as stored against 26.5 and 32.7 s for the tar (the engine spent the
//! same CPU, 9–12 s, either way). Only a format the engine cannot read (zstd to
//! Docker 20.10) is decompressed here; over SSH it is then recompressed with gzip
//! level 1 for the link, on a local socket the tar goes as it is.
//! `--wire-compression` overrides the choice.

use std::fmt;

use crate::archive::Compression;
use crate::engine::facts::LoadFormats;

/// Level of a recompression: the fastest, since it only exists to save the link.
pub const RECOMPRESS_LEVEL: u32 = 1;

/// `--wire-compression`.
/// Its command-line spelling is in `src/cli/value_enums.rs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WireMode {
    /// As stored when the engine reads the file's format; else gzip level 1 over SSH, the tar on a local socket.
    #[default]
    Auto,
    /// The decompressed tar.
    None,
    /// gzip: the file as stored when it is gzip, else recompressed here.
    Gzip,
    /// zstd (Docker 23.0 and later): the file as stored when it is zstd, else recompressed here.
    Zstd,
}

/// How one file travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireEncoding {
    /// The file's own bytes (gzip, zstd, or a plain tar), hashed on the way.
    Stored(Compression),
    /// Decompressed here; the tar is sent.
    Decompressed,
    /// Decompressed here and compressed again at [`RECOMPRESS_LEVEL`].
    Recompressed { from: Compression, to: Compression },
}

impl WireEncoding {
    /// The compression of the bytes on the wire (`gzip`, `zstd`, `none`).
    pub fn on_the_wire(self) -> Compression {
        match self {
            WireEncoding::Stored(compression) => compression,
            WireEncoding::Decompressed => Compression::None,
            WireEncoding::Recompressed { to, .. } => to,
        }
    }

    /// Whether the file is decompressed on the workstation.
    pub fn decompresses(self) -> bool {
        !matches!(self, WireEncoding::Stored(_))
    }
}

impl fmt::Display for WireEncoding {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireEncoding::Stored(Compression::None) => formatter.write_str("none (as stored)"),
            WireEncoding::Stored(compression) => write!(formatter, "{compression} (as stored)"),
            WireEncoding::Decompressed => formatter.write_str("none (decompressed here)"),
            WireEncoding::Recompressed { from, to } => write!(
                formatter,
                "{to} level {RECOMPRESS_LEVEL} ({from} decompressed here)"
            ),
        }
    }
}

/// What the choice depends on besides the file: the mode and the engine.
#[derive(Debug, Clone, Copy)]
pub struct WireSettings {
    pub mode: WireMode,
    pub formats: LoadFormats,
    /// The engine is reached over a local socket (no SSH link).
    pub local: bool,
}

impl WireSettings {
    /// Checks that the engine can read what `mode` asks for; the error names the
    /// engine and what to use instead.
    pub fn new(
        mode: WireMode,
        formats: LoadFormats,
        local: bool,
        engine: &str,
        version: &str,
    ) -> anyhow::Result<WireSettings> {
        if mode == WireMode::Zstd && !formats.zstd {
            anyhow::bail!(
                "--wire-compression zstd: the engine at {engine} (Docker {version}) cannot load \
                 zstd (Docker 23.0 and later can); use --wire-compression gzip or auto"
            );
        }
        Ok(WireSettings {
            mode,
            formats,
            local,
        })
    }

    /// How a file stored with `stored` compression travels. `hash_recorded`: the
    /// manifest has the file's SHA-256, without which stored bytes cannot be
    /// checked on their way (the decompressed tar is checked layer by layer instead).
    pub fn choose(&self, stored: Compression, hash_recorded: bool) -> WireEncoding {
        let readable = match stored {
            Compression::Gzip | Compression::None => true,
            Compression::Zstd => self.formats.zstd,
        };
        let as_stored = |wanted: Compression| {
            if stored == wanted && hash_recorded {
                WireEncoding::Stored(stored)
            } else if wanted == Compression::None {
                WireEncoding::Decompressed
            } else {
                WireEncoding::Recompressed {
                    from: stored,
                    to: wanted,
                }
            }
        };
        match self.mode {
            WireMode::None => WireEncoding::Decompressed,
            WireMode::Gzip => as_stored(Compression::Gzip),
            WireMode::Zstd => as_stored(Compression::Zstd),
            WireMode::Auto if readable => as_stored(stored),
            WireMode::Auto if self.local => WireEncoding::Decompressed,
            WireMode::Auto => as_stored(Compression::Gzip),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: LoadFormats = LoadFormats {
        gzip: true,
        zstd: false,
    };
    const NEW: LoadFormats = LoadFormats {
        gzip: true,
        zstd: true,
    };

    fn settings(mode: WireMode, formats: LoadFormats, local: bool) -> WireSettings {
        WireSettings {
            mode,
            formats,
            local,
        }
    }

    #[test]
    fn auto_sends_what_the_engine_reads_as_stored_over_ssh() {
        let ssh_old = settings(WireMode::Auto, OLD, false);
        assert_eq!(
            ssh_old.choose(Compression::Gzip, true),
            WireEncoding::Stored(Compression::Gzip)
        );
        assert_eq!(
            ssh_old.choose(Compression::Zstd, true),
            WireEncoding::Recompressed {
                from: Compression::Zstd,
                to: Compression::Gzip
            }
        );
        assert_eq!(
            ssh_old.choose(Compression::None, true),
            WireEncoding::Stored(Compression::None)
        );
        let ssh_new = settings(WireMode::Auto, NEW, false);
        assert_eq!(
            ssh_new.choose(Compression::Zstd, true),
            WireEncoding::Stored(Compression::Zstd)
        );
    }

    #[test]
    fn auto_on_a_local_socket_sends_as_stored_or_the_tar() {
        let local = settings(WireMode::Auto, OLD, true);
        assert_eq!(
            local.choose(Compression::Gzip, true),
            WireEncoding::Stored(Compression::Gzip)
        );
        assert_eq!(
            local.choose(Compression::Zstd, true),
            WireEncoding::Decompressed
        );
    }

    #[test]
    fn stored_bytes_need_a_recorded_hash() {
        let ssh = settings(WireMode::Auto, OLD, false);
        assert_eq!(
            ssh.choose(Compression::Gzip, false),
            WireEncoding::Recompressed {
                from: Compression::Gzip,
                to: Compression::Gzip
            }
        );
    }

    #[test]
    fn explicit_modes_override() {
        let gzip = settings(WireMode::Gzip, NEW, true);
        assert_eq!(
            gzip.choose(Compression::Gzip, true),
            WireEncoding::Stored(Compression::Gzip)
        );
        assert_eq!(
            gzip.choose(Compression::None, true),
            WireEncoding::Recompressed {
                from: Compression::None,
                to: Compression::Gzip
            }
        );
        let zstd = settings(WireMode::Zstd, NEW, false);
        assert_eq!(
            zstd.choose(Compression::Gzip, true),
            WireEncoding::Recompressed {
                from: Compression::Gzip,
                to: Compression::Zstd
            }
        );
        let none = settings(WireMode::None, NEW, false);
        assert_eq!(
            none.choose(Compression::Zstd, true),
            WireEncoding::Decompressed
        );
    }

    #[test]
    fn zstd_to_an_old_engine_is_refused_up_front() {
        let message = WireSettings::new(WireMode::Zstd, OLD, false, "ssh://srv", "20.10.24")
            .unwrap_err()
            .to_string();
        assert!(message.contains("cannot load zstd"), "{message}");
        assert!(message.contains("Docker 20.10.24"), "{message}");
        assert!(WireSettings::new(WireMode::Zstd, NEW, false, "ssh://srv", "26.1.5").is_ok());
    }
}
