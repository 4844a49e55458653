//! A stream sealed under a passphrase, for backups: PBKDF2-HMAC-SHA256
//! (600 000 rounds, a random 16-byte salt) derives an AES-256-GCM key; the
//! plain bytes are cut into 64 KiB chunks, each sealed with its index as
//! the nonce and, as associated data, the header and whether it is the
//! last chunk. So another passphrase, an altered header or chunk, chunks
//! reordered, dropped or cut off, and bytes after the end all fail to
//! open, and the error says which. Nothing is handed out unauthenticated:
//! a reader gets a chunk's bytes only after its tag verified. All crypto is
//! `ring`'s.
//!
//! Layout: `HCBACKUP`, format (1 byte), rounds (u32 BE), salt (16 bytes),
//! then chunks, each its sealed length (u32 BE) and the sealed bytes.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use std::io::{self, Read, Write};
use std::num::NonZeroU32;

pub const MAGIC: &[u8; 8] = b"HCBACKUP";
const FORMAT: u8 = 1;
const ROUNDS: u32 = 600_000;
/// Bounds on the rounds a file may ask for: fewer is weak, more would let a
/// crafted file keep the reader busy for minutes.
const ROUNDS_ACCEPTED: std::ops::RangeInclusive<u32> = 100_000..=10_000_000;
const SALT_LEN: usize = 16;
const HEADER_LEN: usize = MAGIC.len() + 1 + 4 + SALT_LEN;
const CHUNK: usize = 64 * 1024;
const TAG_LEN: usize = 16;
/// The shortest passphrase accepted for a new backup.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn derive(passphrase: &str, rounds: u32, salt: &[u8]) -> io::Result<LessSafeKey> {
    let rounds = NonZeroU32::new(rounds).ok_or_else(|| invalid("zero rounds".into()))?;
    let mut key = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        passphrase.as_bytes(),
        &mut key,
    );
    let key = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| invalid("bad key length".into()))?;
    Ok(LessSafeKey::new(key))
}

fn nonce(index: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

fn associated(header: &[u8], last: bool) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.push(u8::from(last));
    aad
}

/// Seals what is written to it into `out`; `finish` seals the last chunk.
/// Dropped without `finish`, the stream has no last chunk and will not open.
pub struct SealingWriter<W: Write> {
    out: W,
    key: LessSafeKey,
    header: Vec<u8>,
    index: u64,
    pending: Vec<u8>,
}

impl<W: Write> SealingWriter<W> {
    pub fn new(mut out: W, passphrase: &str) -> io::Result<Self> {
        if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters"),
            ));
        }
        let mut salt = [0u8; SALT_LEN];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| io::Error::other("the system random number generator failed"))?;
        let mut header = MAGIC.to_vec();
        header.push(FORMAT);
        header.extend_from_slice(&ROUNDS.to_be_bytes());
        header.extend_from_slice(&salt);
        out.write_all(&header)?;
        Ok(Self {
            key: derive(passphrase, ROUNDS, &salt)?,
            out,
            header,
            index: 0,
            pending: Vec::with_capacity(CHUNK),
        })
    }

    fn seal(&mut self, len: usize, last: bool) -> io::Result<()> {
        let mut chunk: Vec<u8> = self.pending.drain(..len).collect();
        self.key
            .seal_in_place_append_tag(
                nonce(self.index),
                Aad::from(associated(&self.header, last)),
                &mut chunk,
            )
            .map_err(|_| io::Error::other("sealing failed"))?;
        self.index += 1;
        let len = u32::try_from(chunk.len()).map_err(|_| io::Error::other("chunk too long"))?;
        self.out.write_all(&len.to_be_bytes())?;
        self.out.write_all(&chunk)
    }

    /// Seals what is left as the last chunk; returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        let len = self.pending.len();
        self.seal(len, true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        // A full chunk is sealed only once more follows: the last chunk is
        // known only at `finish`.
        while self.pending.len() > CHUNK {
            self.seal(CHUNK, false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Opens a sealed stream, one authenticated chunk at a time.
pub struct OpeningReader<R: Read> {
    input: R,
    key: LessSafeKey,
    header: Vec<u8>,
    index: u64,
    chunk: Vec<u8>,
    at: usize,
    ended: bool,
}

impl<R: Read> OpeningReader<R> {
    pub fn new(mut input: R, passphrase: &str) -> io::Result<Self> {
        let mut header = vec![0u8; HEADER_LEN];
        input.read_exact(&mut header).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => invalid("too short to be a headcount backup".into()),
            _ => e,
        })?;
        if &header[..MAGIC.len()] != MAGIC {
            return Err(invalid("not a headcount backup".into()));
        }
        let format = header[MAGIC.len()];
        if format != FORMAT {
            return Err(invalid(format!(
                "backup format {format}, which this headcount does not know (it reads {FORMAT})"
            )));
        }
        let rounds_at = MAGIC.len() + 1;
        let mut rounds = [0u8; 4];
        rounds.copy_from_slice(&header[rounds_at..rounds_at + 4]);
        let rounds = u32::from_be_bytes(rounds);
        if !ROUNDS_ACCEPTED.contains(&rounds) {
            return Err(invalid(format!(
                "the header asks for {rounds} key derivation rounds; altered"
            )));
        }
        let key = derive(passphrase, rounds, &header[rounds_at + 4..])?;
        Ok(Self {
            input,
            key,
            header,
            index: 0,
            chunk: Vec::new(),
            at: 0,
            ended: false,
        })
    }

    /// Reads and opens the next chunk; false at the end.
    fn next_chunk(&mut self) -> io::Result<bool> {
        if self.ended {
            let mut more = [0u8; 1];
            return match self.input.read(&mut more)? {
                0 => Ok(false),
                _ => Err(invalid(
                    "bytes follow the backup's last chunk; altered".into(),
                )),
            };
        }
        let truncated = |index: u64| {
            invalid(format!(
                "the backup is cut short (after chunk {index}); it is incomplete"
            ))
        };
        let mut len = [0u8; 4];
        self.input
            .read_exact(&mut len)
            .map_err(|_| truncated(self.index))?;
        let len = u32::from_be_bytes(len) as usize;
        if !(TAG_LEN..=CHUNK + TAG_LEN).contains(&len) {
            return Err(invalid(format!(
                "chunk {} has an impossible length; altered",
                self.index
            )));
        }
        let mut sealed = vec![0u8; len];
        self.input
            .read_exact(&mut sealed)
            .map_err(|_| truncated(self.index))?;
        for last in [false, true] {
            let mut attempt = sealed.clone();
            if let Ok(plain) = self.key.open_in_place(
                nonce(self.index),
                Aad::from(associated(&self.header, last)),
                &mut attempt,
            ) {
                let plain_len = plain.len();
                attempt.truncate(plain_len);
                self.chunk = attempt;
                self.at = 0;
                self.index += 1;
                self.ended = last;
                return Ok(true);
            }
        }
        Err(invalid(if self.index == 0 {
            "cannot open the backup: another passphrase, or the file was altered".into()
        } else {
            format!("chunk {} of the backup was altered or moved", self.index)
        }))
    }
}

impl<R: Read> Read for OpeningReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASS: &str = "correct horse battery";

    fn sealed(plain: &[u8]) -> Vec<u8> {
        let mut w = SealingWriter::new(Vec::new(), PASS).unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap()
    }

    fn open(bytes: &[u8], passphrase: &str) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        OpeningReader::new(bytes, passphrase)?.read_to_end(&mut out)?;
        Ok(out)
    }

    fn message(result: io::Result<Vec<u8>>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn what_is_sealed_opens_whole_at_any_length() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            assert_eq!(open(&sealed(&plain), PASS).unwrap(), plain, "length {len}");
        }
    }

    #[test]
    fn every_kind_of_damage_fails_and_says_which() {
        let plain = vec![7u8; 2 * CHUNK + 100];
        let good = sealed(&plain);
        assert!(message(open(&good, "another passphrase")).contains("another passphrase"));

        let mut flipped = good.clone();
        let second_chunk = HEADER_LEN + 4 + CHUNK + TAG_LEN + 4 + 10;
        flipped[second_chunk] ^= 1;
        assert!(message(open(&flipped, PASS)).contains("chunk 1 of the backup was altered"));

        // Cut at a chunk boundary: every chunk there authentic, the last missing.
        let cut = &good[..HEADER_LEN + 2 * (4 + CHUNK + TAG_LEN)];
        assert!(message(open(cut, PASS)).contains("cut short"));
        assert!(message(open(&good[..good.len() - 1], PASS)).contains("cut short"));

        let mut longer = good.clone();
        longer.push(0);
        assert!(message(open(&longer, PASS)).contains("bytes follow"));

        // The salt is associated data: changed, the key and every tag differ.
        let mut salted = good.clone();
        salted[HEADER_LEN - 1] ^= 1;
        assert!(message(open(&salted, PASS)).contains("another passphrase, or"));

        assert!(message(open(
            b"PK\x03\x04 a zip file, say, long enough for a header",
            PASS
        ))
        .contains("not a headcount"));
        assert!(message(open(b"HCB", PASS)).contains("too short"));
    }

    #[test]
    fn a_short_passphrase_is_refused() {
        let Err(e) = SealingWriter::new(Vec::new(), "short") else {
            panic!("a 5-character passphrase was accepted");
        };
        assert!(e.to_string().contains("at least 12 characters"));
    }
}
