//! One shared-memory region: a sealed memfd mapped `MAP_SHARED`, holding a header of atomic words
//! (the doorbell protocol's state) followed by the payload area.
//!
//! The host creates each region, sizes it and seals it (`F_SEAL_SHRINK | F_SEAL_GROW |
//! F_SEAL_SEAL`) *before* the worker ever sees the fd, so a worker cannot truncate the file under
//! the host's mapping (which would `SIGBUS` the host). The worker maps the inherited fd after
//! checking its size and seals.
//!
//! Every byte of the mapping can be written by the peer at any time. The header is therefore made
//! only of atomics, and the payload is only ever copied in or out, with relaxed atomic accesses
//! (a plain copy would race with the peer's writes) and never through a reference: the host
//! never parses bytes in place (TOCTOU) and treats whatever it copied out as untrusted.

use crate::IpcError;
use rustix::fs::{
    MemfdFlags, SealFlags, fcntl_add_seals, fcntl_get_seals, fstat, ftruncate, memfd_create,
};
use rustix::mm::{MapFlags, ProtFlags, mmap, munmap};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

/// The header at offset 0 of a region. Two cache lines: the first is written by the sender of
/// this direction, the second by the receiver.
#[repr(C, align(64))]
#[derive(Debug)]
pub(crate) struct Header {
    // --- written by the sender ---
    /// Bumped (wrapping) once per message; the receiver's doorbell word.
    pub seq: AtomicU32,
    /// Payload length of the current message (untrusted when read by the host).
    pub len: AtomicU32,
    /// Where the payload is: [`KIND_INLINE`] or [`KIND_SOCKET`].
    pub kind: AtomicU32,
    /// CPU the sender last ran on (spin heuristic only).
    pub sender_cpu: AtomicU32,
    /// Non-zero while the sender sleeps on `ack`.
    pub ack_waiting: AtomicU32,
    _pad_sender: [AtomicU32; 11],
    // --- written by the receiver ---
    /// The last `seq` the receiver consumed; the sender's doorbell word.
    pub ack: AtomicU32,
    /// Non-zero while the receiver sleeps on `seq`.
    pub waiting: AtomicU32,
    _pad_receiver: [AtomicU32; 14],
}

/// The payload lies in the region.
pub(crate) const KIND_INLINE: u32 = 0;
/// The payload follows as a frame on the socket (slow path).
pub(crate) const KIND_SOCKET: u32 = 1;

const HEADER_BYTES: usize = std::mem::size_of::<Header>();
const _: () = assert!(HEADER_BYTES == 128);

/// A mapped region; unmapped on drop.
#[derive(Debug)]
pub(crate) struct Region {
    fd: OwnedFd,
    base: NonNull<u8>,
    map_len: usize,
    capacity: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; the header is only accessed
// through atomics and the payload only through raw copies made by `&mut self`-free methods that
// never hand out references into it, so moving the owner to another thread is sound.
unsafe impl Send for Region {}

fn map_len_for(capacity: usize) -> Result<usize, IpcError> {
    let page = rustix::param::page_size();
    HEADER_BYTES
        .checked_add(capacity)
        .and_then(|n| n.checked_next_multiple_of(page))
        .ok_or_else(|| IpcError::setup(format!("region of {capacity} bytes is too large")))
}

const SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

impl Region {
    /// Creates, sizes, seals and maps a new region with `capacity` payload bytes.
    pub(crate) fn create(name: &str, capacity: usize) -> Result<Region, IpcError> {
        let map_len = map_len_for(capacity)?;
        let fd = memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .map_err(|e| IpcError::setup(format!("memfd_create: {e}")))?;
        ftruncate(&fd, map_len as u64).map_err(|e| IpcError::setup(format!("ftruncate: {e}")))?;
        fcntl_add_seals(&fd, SEALS).map_err(|e| IpcError::setup(format!("sealing memfd: {e}")))?;
        Self::map(fd, map_len, capacity)
    }

    /// Maps a region inherited from the host, after checking it is sealed and large enough.
    pub(crate) fn from_inherited(fd: OwnedFd, capacity: usize) -> Result<Region, IpcError> {
        let map_len = map_len_for(capacity)?;
        let seals = fcntl_get_seals(&fd).map_err(|e| IpcError::setup(format!("get seals: {e}")))?;
        if !seals.contains(SealFlags::SHRINK | SealFlags::GROW) {
            return Err(IpcError::setup(
                "inherited region is not sealed against resizing",
            ));
        }
        let size = fstat(&fd)
            .map_err(|e| IpcError::setup(format!("fstat: {e}")))?
            .st_size;
        if u64::try_from(size).ok() != Some(map_len as u64) {
            return Err(IpcError::setup(format!(
                "inherited region is {size} bytes, expected {map_len}"
            )));
        }
        Self::map(fd, map_len, capacity)
    }

    fn map(fd: OwnedFd, map_len: usize, capacity: usize) -> Result<Region, IpcError> {
        // SAFETY: we ask for a fresh mapping (null hint, no MAP_FIXED), so no existing memory is
        // replaced. The file is sealed at exactly `map_len` bytes, so every mapped page stays
        // backed for the mapping's lifetime (no SIGBUS), and `Drop` unmaps exactly this range.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                map_len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::POPULATE,
                &fd,
                0,
            )
        }
        .map_err(|e| IpcError::setup(format!("mmap: {e}")))?;
        let base =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| IpcError::setup("mmap returned null"))?;
        Ok(Region {
            fd,
            base,
            map_len,
            capacity,
        })
    }

    /// The header words.
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping is page-aligned (so 64-aligned), at least HEADER_BYTES long and
        // lives as long as `self`. Header consists only of atomics, for which concurrent writes
        // by the peer are well-defined, and every bit pattern is a valid u32.
        unsafe { self.base.cast::<Header>().as_ref() }
    }

    /// Payload capacity in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The memfd, for handing to the worker.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Copies `src` into the payload area. `src.len()` must be at most the capacity.
    pub(crate) fn write_payload(&self, src: &[u8]) -> Result<(), IpcError> {
        if src.len() > self.capacity {
            return Err(IpcError::PayloadTooLarge {
                len: src.len() as u64,
                limit: self.capacity as u64,
                what: "shared-memory region",
            });
        }
        // SAFETY: the payload area starts HEADER_BYTES (a multiple of 8) into the page-aligned
        // mapping and has `capacity` bytes (map_len >= HEADER_BYTES + capacity);
        // `src.len() <= capacity` was checked. The hazard is the peer, which can write the same
        // bytes at any moment: a plain copy would race with it, so `store_shared` writes with
        // relaxed atomic stores only, and no reference to the shared bytes is ever formed.
        unsafe { store_shared(self.base.as_ptr().add(HEADER_BYTES), src) };
        Ok(())
    }

    /// Replaces `out` with a copy of the first `len` payload bytes. The copy, not the shared
    /// memory, is what callers parse.
    pub(crate) fn read_payload(&self, len: usize, out: &mut Vec<u8>) -> Result<(), IpcError> {
        if len > self.capacity {
            return Err(IpcError::PayloadTooLarge {
                len: len as u64,
                limit: self.capacity as u64,
                what: "shared-memory region",
            });
        }
        out.clear();
        out.reserve(len);
        // SAFETY: the source range lies inside the payload area (checked above), which starts
        // HEADER_BYTES (a multiple of 8) into the page-aligned mapping; the destination is
        // `out`'s spare capacity of at least `len` bytes (reserved above). The hazard is the
        // peer writing those bytes while they are copied: `load_shared` reads each byte once,
        // with relaxed atomic loads only (no plain read races with the writer, and no reference
        // to the shared bytes is formed), into private memory. What it copies may mix old and
        // new bytes; callers parse the copy, never the region, and treat it as untrusted.
        unsafe {
            load_shared(
                self.base.as_ptr().add(HEADER_BYTES),
                out.spare_capacity_mut().as_mut_ptr().cast::<u8>(),
                len,
            );
            out.set_len(len);
        }
        Ok(())
    }
}

/// The word in which shared bytes are copied: the payload area is aligned to it.
const WORD: usize = std::mem::size_of::<u64>();
const _: () = assert!(HEADER_BYTES.is_multiple_of(WORD));

/// Copies `len` bytes out of memory another process may be writing, with relaxed atomic loads
/// (a word at a time, then the tail a byte at a time): every byte is read exactly once and no
/// read races with the writer in the memory model's sense.
///
/// # Safety
/// `src` is 8-aligned and valid for reads of `len` bytes for the call; `dst` is valid for
/// writes of `len` bytes and does not overlap `src`.
unsafe fn load_shared(src: *const u8, dst: *mut u8, len: usize) {
    use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
    let words = len / WORD;
    for i in 0..words {
        // SAFETY: in bounds and 8-aligned per the contract; AtomicU64 has u64's layout, and an
        // atomic view of shared memory is what concurrent access needs.
        let w = unsafe { AtomicU64::from_ptr(src.add(i * WORD).cast::<u64>().cast_mut()) }
            .load(Relaxed);
        // SAFETY: `dst` is valid for `len` bytes; the write may be unaligned.
        unsafe { dst.add(i * WORD).cast::<u64>().write_unaligned(w) };
    }
    for i in words * WORD..len {
        // SAFETY: as above, byte-sized.
        let b = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Relaxed);
        // SAFETY: in bounds of `dst`.
        unsafe { dst.add(i).write(b) };
    }
}

/// Copies `src` into memory another process may be reading or writing, with relaxed atomic
/// stores (as [`load_shared`]).
///
/// # Safety
/// `dst` is 8-aligned and valid for writes of `src.len()` bytes for the call, and does not
/// overlap `src`.
unsafe fn store_shared(dst: *mut u8, src: &[u8]) {
    use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
    let mut words = src.chunks_exact(WORD);
    for (i, w) in words.by_ref().enumerate() {
        let mut b = [0u8; WORD];
        b.copy_from_slice(w);
        // SAFETY: in bounds and 8-aligned per the contract.
        unsafe { AtomicU64::from_ptr(dst.add(i * WORD).cast::<u64>()) }
            .store(u64::from_ne_bytes(b), Relaxed);
    }
    let done = src.len() - words.remainder().len();
    for (i, &b) in words.remainder().iter().enumerate() {
        // SAFETY: in bounds per the contract.
        unsafe { AtomicU8::from_ptr(dst.add(done + i)) }.store(b, Relaxed);
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `base`/`map_len` are exactly the mapping created in `map`, and no reference
        // into it outlives `self` (`header()` borrows `self`).
        let _ = unsafe { munmap(self.base.as_ptr().cast(), self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn sealed_and_shared() {
        let r = Region::create("test", 1000).unwrap();
        assert_eq!(r.capacity(), 1000);
        // The seals hold: the file cannot shrink or grow.
        assert!(ftruncate(r.fd(), 0).is_err());
        assert!(ftruncate(r.fd(), 1 << 30).is_err());
        assert!(fcntl_add_seals(r.fd(), SealFlags::WRITE).is_err());
        r.write_payload(b"abc").unwrap();
        r.header().len.store(3, Ordering::SeqCst);
        // A second mapping of the same memfd (what the worker gets) sees the bytes.
        let dup = r.fd().try_clone_to_owned().unwrap();
        let peer = Region::from_inherited(dup, 1000).unwrap();
        let mut out = Vec::new();
        peer.read_payload(peer.header().len.load(Ordering::SeqCst) as usize, &mut out)
            .unwrap();
        assert_eq!(out, b"abc");
        assert!(peer.read_payload(1001, &mut out).is_err());
        assert!(r.write_payload(&[0; 1001]).is_err());
    }

    #[test]
    fn every_length_and_byte_survives_the_word_wise_copies() {
        let r = Region::create("copies", 1000).unwrap();
        let dup = r.fd().try_clone_to_owned().unwrap();
        let peer = Region::from_inherited(dup, 1000).unwrap();
        let mut out = Vec::new();
        for len in (0..=3 * WORD + 1).chain([999, 1000]) {
            let src: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            r.write_payload(&src).unwrap();
            peer.read_payload(len, &mut out).unwrap();
            assert_eq!(out, src, "length {len}");
        }
    }

    #[test]
    fn a_copy_out_while_the_peer_writes_is_a_whole_private_copy() {
        // The peer rewrites the payload as fast as it can while the host copies it out: every
        // copy has the asked length and holds only bytes the peer wrote (each a whole word of
        // one value or the other, as the peer stores word-wise), never anything else.
        let r = Region::create("race", 4096).unwrap();
        let dup = r.fd().try_clone_to_owned().unwrap();
        r.write_payload(&[0xAA; 4096]).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                // The peer's own mapping of the memfd, as the worker has.
                let peer = Region::from_inherited(dup, 4096).unwrap();
                let mut v = 0u8;
                while !stop.load(Ordering::Relaxed) {
                    v = if v == 0xAA { 0x55 } else { 0xAA };
                    peer.write_payload(&[v; 4096]).unwrap();
                }
            });
            let mut out = Vec::new();
            for _ in 0..200 {
                r.read_payload(4096, &mut out).unwrap();
                assert_eq!(out.len(), 4096);
                assert!(out.iter().all(|&b| b == 0xAA || b == 0x55));
            }
            stop.store(true, Ordering::Relaxed);
        });
    }

    #[test]
    fn inherited_region_must_be_sealed_and_sized() {
        let fd = memfd_create("unsealed", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
        ftruncate(&fd, 4096).unwrap();
        assert!(Region::from_inherited(fd, 100).is_err());
        let r = Region::create("sized", 100).unwrap();
        let dup = r.fd().try_clone_to_owned().unwrap();
        assert!(Region::from_inherited(dup, 1 << 20).is_err());
    }
}
