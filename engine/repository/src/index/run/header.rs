//! An index run's header section and trailer (repo-format.md §11.1): the packs, index files,
//! page fences and filters, with one MAC. Written and read as a stream, so a run of 100 M
//! blobs never holds its 130 MB header twice; what is read is used only once the MAC verifies.

use std::io::{Read, Write};

use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::{BlobId, Id, IndexId, PackId};
use xorf::{BinaryFuse8, Filter};

use super::layout::{END, MAC, MAGIC, PARTITIONS, PER_PAGE, TRAILER, VERSION, array, filter_key};

/// Everything of a run but its pages; held in memory while the run is open.
pub struct Header {
    /// Random per run: a block of one run does not verify in another.
    pub nonce: [u8; 16],
    /// Records in the pages.
    pub blobs: u64,
    /// Every pack a record may name, by position.
    pub packs: Vec<(PackId, u64)>,
    /// The index files the run accounts for.
    pub files: Vec<IndexId>,
    /// The first id prefix ([`super::layout::fence_of`]) of every page.
    pub fences: Vec<u64>,
    /// One filter per partition; `None` for an empty partition.
    pub filters: Vec<Option<BinaryFuse8>>,
}

fn damaged(what: &str) -> Error {
    Error::new(ErrorKind::Corrupt, format!("index run: {what}"))
}

fn mac_hasher(key: &[u8; 32]) -> blake3::Hasher {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(b"header");
    h
}

/// Writes through, hashing and counting what passes.
struct MacWriter<'w, W: Write> {
    out: &'w mut W,
    mac: blake3::Hasher,
    len: u64,
}

impl<W: Write> MacWriter<'_, W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.mac.update(bytes);
        self.len += bytes.len() as u64;
        self.out.write_all(bytes)
    }
}

impl Header {
    /// Writes the header section, then the trailer that authenticates it.
    pub fn write(&self, key: &[u8; 32], out: &mut impl Write) -> std::io::Result<()> {
        let mut w = MacWriter {
            out,
            mac: mac_hasher(key),
            len: 0,
        };
        w.put(MAGIC)?;
        w.put(&VERSION.to_le_bytes())?;
        w.put(&self.nonce)?;
        for n in [self.blobs, self.packs.len() as u64, self.files.len() as u64] {
            w.put(&n.to_le_bytes())?;
        }
        for (id, size) in &self.packs {
            w.put(&id.0.0)?;
            w.put(&size.to_le_bytes())?;
        }
        for id in &self.files {
            w.put(&id.0.0)?;
        }
        for fence in &self.fences {
            w.put(&fence.to_le_bytes())?;
        }
        for filter in &self.filters {
            write_filter(filter.as_ref(), &mut w)?;
        }
        let (mac, len) = (*w.mac.finalize().as_bytes(), w.len);
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&mac)?;
        out.write_all(END)
    }

    /// The header length a trailer states, once its magic is checked.
    pub fn length_in(trailer: &[u8]) -> Result<u64> {
        if trailer.len() != TRAILER || &trailer[TRAILER - 8..] != END {
            return Err(damaged("no trailer (an unfinished or foreign file)"));
        }
        Ok(u64::from_le_bytes(array(trailer)))
    }

    /// Reads a header section of `len` bytes from `section` and verifies it against its
    /// trailer. Counts are checked against the bytes left before anything is allocated, so
    /// a damaged header cannot ask for more memory than its own length.
    pub fn read(key: &[u8; 32], section: impl Read, len: u64, trailer: &[u8]) -> Result<Self> {
        let mut r = Reader {
            inner: section,
            left: len,
            mac: mac_hasher(key),
        };
        if r.take::<8>()? != *MAGIC || r.u32()? != VERSION {
            return Err(damaged("unknown magic or version"));
        }
        let nonce = r.take::<16>()?;
        let blobs = r.u64()?;
        let packs = r.count(40)?;
        let files = r.count(32)?;
        let packs = (0..packs)
            .map(|_| Ok((PackId(Id(r.take()?)), r.u64()?)))
            .collect::<Result<_>>()?;
        let files = (0..files)
            .map(|_| Ok(IndexId(Id(r.take()?))))
            .collect::<Result<_>>()?;
        let pages = blobs.div_ceil(PER_PAGE as u64);
        if pages.saturating_mul(8) > r.left {
            return Err(damaged("more pages than the header has fences"));
        }
        let fences = (0..pages).map(|_| r.u64()).collect::<Result<_>>()?;
        let filters = (0..PARTITIONS)
            .map(|_| read_filter(&mut r))
            .collect::<Result<_>>()?;
        if r.left != 0 {
            return Err(damaged("trailing bytes in the header"));
        }
        let expected: [u8; MAC] = array(&trailer[8..]);
        if *r.mac.finalize().as_bytes() != expected {
            return Err(damaged("header does not verify (another key, or damage)"));
        }
        Ok(Self {
            nonce,
            blobs,
            packs,
            files,
            fences,
            filters,
        })
    }

    /// True when the partition of `id` may hold it.
    pub fn may_hold(&self, id: &BlobId) -> bool {
        self.filters[usize::from(id.0.0[0])]
            .as_ref()
            .is_some_and(|f| f.contains(&filter_key(id)))
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> usize {
        let filters: usize = self.filters.iter().flatten().map(|f| f.len()).sum();
        self.packs.capacity() * 40
            + self.files.capacity() * 32
            + self.fences.capacity() * 8
            + filters
    }
}

fn write_filter<W: Write>(
    filter: Option<&BinaryFuse8>,
    w: &mut MacWriter<'_, W>,
) -> std::io::Result<()> {
    let Some(f) = filter else {
        return w.put(&u64::MAX.to_le_bytes());
    };
    w.put(&(f.fingerprints.len() as u64).to_le_bytes())?;
    w.put(&f.descriptor.seed.to_le_bytes())?;
    for n in [
        f.descriptor.segment_length,
        f.descriptor.segment_length_mask,
        f.descriptor.segment_count_length,
    ] {
        w.put(&n.to_le_bytes())?;
    }
    w.put(&f.fingerprints)
}

fn read_filter<R: Read>(r: &mut Reader<R>) -> Result<Option<BinaryFuse8>> {
    let len = r.u64()?;
    if len == u64::MAX {
        return Ok(None);
    }
    let seed = r.u64()?;
    let (segment_length, segment_length_mask, segment_count_length) =
        (r.u32()?, r.u32()?, r.u32()?);
    // The filter indexes its fingerprints with these: they must fit its length.
    let fits = segment_length.is_power_of_two()
        && segment_length_mask == segment_length - 1
        && u64::from(segment_count_length) + 2 * u64::from(segment_length) <= len
        && len <= u64::from(u32::MAX)
        && len <= r.left;
    if !fits {
        return Err(damaged("a filter's shape does not match its length"));
    }
    let mut fingerprints = vec![0u8; len as usize];
    r.fill(&mut fingerprints)?;
    Ok(Some(BinaryFuse8 {
        descriptor: xorf::Descriptor {
            seed,
            segment_length,
            segment_length_mask,
            segment_count_length,
        },
        fingerprints: fingerprints.into(),
    }))
}

/// Reads at most `left` bytes, hashing them.
struct Reader<R: Read> {
    inner: R,
    left: u64,
    mac: blake3::Hasher,
}

impl<R: Read> Reader<R> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        if buf.len() as u64 > self.left {
            return Err(damaged("header cut short"));
        }
        self.inner
            .read_exact(buf)
            .map_err(|e| Error::io("cannot read the index run's header", e))?;
        self.mac.update(buf);
        self.left -= buf.len() as u64;
        Ok(())
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        self.fill(&mut out)?;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    /// A count of items of `each` bytes, when that many fit in what is left.
    fn count(&mut self, each: u64) -> Result<u64> {
        let n = self.u64()?;
        if n.saturating_mul(each) > self.left {
            return Err(damaged("a count larger than the header"));
        }
        Ok(n)
    }
}
