//! One streamed archive: `tar` inside gzip (flate2, pure Rust), SHA-256 of every member and of the
//! archive computed as the bytes go by.
//!
//! gzip rather than zstd: `pg_dump -Fc` output is already zlib-compressed, so zstd's better ratio buys
//! little on the largest member, while flate2 needs no C library (one static binary, musl-friendly).
//!
//! A stream of unknown length (pg_dump's stdout, `podman volume export`) cannot be one tar member
//! (the header holds the size), so it is cut into parts of at most `chunk` bytes (`NAME.0000`,
//! `NAME.0001`, …): memory use is one part, whatever the size of the database.
use anyhow::{bail, Context as _, Result};
use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

/// Default part size of a streamed member.
pub const CHUNK: usize = 8 << 20;

/// One member of the tar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// A stream stored as consecutive parts: its whole size and checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    pub name: String,
    /// `pg_dump` (custom format) or `volume` (a tar of a podman volume).
    pub kind: String,
    pub parts: usize,
    pub size: u64,
    pub sha256: String,
}

/// Size and checksum of the archive file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub size: u64,
    pub sha256: String,
    pub members: Vec<Member>,
    pub streams: Vec<Stream>,
}

/// Counts and hashes what passes through to the inner writer.
pub struct HashWriter<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts and hashes what is read through it.
pub struct HashReader<R> {
    inner: R,
    hash: Sha256,
    len: u64,
}

impl<R: Read> HashReader<R> {
    pub fn new(inner: R) -> Self {
        HashReader {
            inner,
            hash: Sha256::new(),
            len: 0,
        }
    }
    /// Read to the end, then return (size, hex sha256).
    pub fn finish(mut self) -> io::Result<(u64, String)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.len, hex::encode(self.hash.finalize())))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Writes the archive to a file (the caller's temp name), one member at a time.
pub struct Writer {
    tar: tar::Builder<GzEncoder<HashWriter<BufWriter<File>>>>,
    members: Vec<Member>,
    streams: Vec<Stream>,
    chunk: usize,
    mtime: u64,
}

impl Writer {
    pub fn create(path: &Path, chunk: usize, mtime: u64) -> Result<Writer> {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let hw = HashWriter {
            inner: BufWriter::new(f),
            hash: Sha256::new(),
            len: 0,
        };
        let mut tar = tar::Builder::new(GzEncoder::new(hw, Compression::fast()));
        tar.mode(tar::HeaderMode::Deterministic);
        Ok(Writer {
            tar,
            members: Vec::new(),
            streams: Vec::new(),
            chunk: chunk.max(1),
            mtime,
        })
    }

    fn header(&self, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o600);
        h.set_mtime(self.mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h
    }

    /// Add `data` as one member.
    pub fn add_bytes(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let mut h = self.header(data.len() as u64);
        self.tar
            .append_data(&mut h, name, data)
            .with_context(|| format!("writing {name} into the archive"))?;
        self.members.push(Member {
            name: name.into(),
            size: data.len() as u64,
            sha256: hex::encode(Sha256::digest(data)),
        });
        Ok(())
    }

    /// Add everything `input` yields as the stream `name` (parts `name.0000`, …).
    pub fn add_stream(&mut self, name: &str, kind: &str, input: &mut dyn Read) -> Result<Stream> {
        let mut whole = Sha256::new();
        let mut size = 0u64;
        let mut parts = 0usize;
        let mut buf = vec![0u8; self.chunk];
        loop {
            let n = fill(input, &mut buf).with_context(|| format!("reading {name}"))?;
            if n == 0 && parts > 0 {
                break;
            }
            let part = &buf[..n];
            whole.update(part);
            size += n as u64;
            self.add_bytes(&format!("{name}.{parts:04}"), part)?;
            parts += 1;
            if n < buf.len() {
                break;
            }
        }
        let s = Stream {
            name: name.into(),
            kind: kind.into(),
            parts,
            size,
            sha256: hex::encode(whole.finalize()),
        };
        self.streams.push(s.clone());
        Ok(s)
    }

    /// Finish gzip, flush and fsync the file; returns the archive's size and checksum.
    pub fn finish(self) -> Result<Sealed> {
        let gz = self.tar.into_inner().context("finishing the tar")?;
        let mut hw = gz.finish().context("finishing gzip")?;
        hw.flush()?;
        let file = hw
            .inner
            .into_inner()
            .map_err(|e| e.into_error())
            .context("flushing the archive")?;
        file.sync_all().context("fsync of the archive")?;
        Ok(Sealed {
            size: hw.len,
            sha256: hex::encode(hw.hash.finalize()),
            members: self.members,
            streams: self.streams,
        })
    }
}

/// Read until `buf` is full or the input ends.
fn fill(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Read the whole archive, checking the file's checksum and every member's against `expect`; nothing
/// is extracted. Any difference (missing, extra, changed, truncated) is an error naming it.
pub fn check(path: &Path, expect: &Sealed) -> Result<()> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut outer = HashReader::new(std::io::BufReader::new(f));
    let mut seen = Vec::new();
    {
        let mut ar = tar::Archive::new(GzDecoder::new(&mut outer));
        for entry in ar.entries().context("reading the archive")? {
            let entry = entry.context("reading the archive (corrupt or truncated)")?;
            let name = entry.path()?.to_string_lossy().into_owned();
            let (size, sha256) = HashReader::new(entry)
                .finish()
                .with_context(|| format!("reading member {name} (corrupt or truncated)"))?;
            seen.push(Member { name, size, sha256 });
        }
    }
    let (size, sha256) = outer.finish()?;
    if sha256 != expect.sha256 || size != expect.size {
        bail!(
            "archive checksum mismatch: the manifest says {} bytes sha256 {}, the file is {size} bytes sha256 {sha256}",
            expect.size,
            expect.sha256
        );
    }
    if seen != expect.members {
        let missing: Vec<&str> = expect
            .members
            .iter()
            .filter(|m| !seen.contains(m))
            .map(|m| m.name.as_str())
            .collect();
        bail!(
            "archive members differ from the manifest (missing or changed: {})",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Stream the parts of `stream` out of the archive into `out`, in order, checking the whole stream's
/// checksum on the way (the archive was [`check`]ed before; this guards against a change since).
pub fn extract_stream(path: &Path, stream: &Stream, out: &mut dyn Write) -> Result<()> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut ar = tar::Archive::new(GzDecoder::new(std::io::BufReader::new(f)));
    let mut whole = Sha256::new();
    let mut size = 0u64;
    let mut next = 0usize;
    for entry in ar.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if name != format!("{}.{next:04}", stream.name) {
            continue;
        }
        let mut buf = [0u8; 64 << 10];
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            whole.update(&buf[..n]);
            size += n as u64;
            out.write_all(&buf[..n])?;
        }
        next += 1;
        if next == stream.parts {
            break;
        }
    }
    if next != stream.parts || size != stream.size || hex::encode(whole.finalize()) != stream.sha256
    {
        bail!("{} in the archive does not match its checksum", stream.name);
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashed apart from the writer, so the seal is checked against a second reading.
    fn file_sha256(path: &Path) -> Result<(u64, String)> {
        let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(HashReader::new(std::io::BufReader::new(f)).finish()?)
    }

    #[test]
    fn streams_are_cut_into_parts_and_checked() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.tar.gz");
        let mut w = Writer::create(&p, 10, 0).unwrap();
        w.add_bytes("x.json", b"{}").unwrap();
        let data: Vec<u8> = (0..35u8).collect();
        let s = w
            .add_stream("db/x.dump", "pg_dump", &mut &data[..])
            .unwrap();
        assert_eq!(s.parts, 4);
        let empty = w
            .add_stream("volumes/e.tar", "volume", &mut &b""[..])
            .unwrap();
        assert_eq!((empty.parts, empty.size), (1, 0));
        let sealed = w.finish().unwrap();
        assert_eq!(
            file_sha256(&p).unwrap(),
            (sealed.size, sealed.sha256.clone())
        );
        check(&p, &sealed).unwrap();
        let mut out = Vec::new();
        extract_stream(&p, &s, &mut out).unwrap();
        assert_eq!(out, data);
        // One flipped byte anywhere: refused.
        let mut bytes = std::fs::read(&p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&p, &bytes).unwrap();
        assert!(check(&p, &sealed).is_err());
        // Truncated: refused.
        std::fs::write(&p, &bytes[..mid]).unwrap();
        assert!(check(&p, &sealed).is_err());
    }
}
