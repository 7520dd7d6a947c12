//! The stored form of a code object: one definition, written and read by both stores.
//!
//! `ROMACODE`, a format number (u32), then the id, version string, JS, WASM, WASM-for-JS and
//! the tags, each a u32 length and its bytes (little endian), then an FNV-1a 64 checksum of
//! everything before it. Reading never trusts a length: each is checked against the bytes
//! left and the whole against `max_object_bytes`, strings must be UTF-8, and nothing may
//! follow the checksum. The checksum catches damage (a torn disk write, a bad copy), not an
//! attacker: whoever can write the store can load code anyway.

use crate::StoreError;
use roma_core::CodeObject;
use std::collections::HashMap;

const MAGIC: &[u8; 8] = b"ROMACODE";
const FORMAT: u32 = 1;
/// The most tags one object may carry.
pub const MAX_TAGS: usize = 256;
const FIXED: usize = 8 + 4 + 5 * 4 + 4 + 8;

/// The bytes `code` takes when stored.
pub fn encoded_len(code: &CodeObject) -> usize {
    FIXED
        + code.id.len()
        + code.version_string.len()
        + code.js.len()
        + code.wasm.len()
        + code.wasm_bin.len()
        + code
            .tags
            .iter()
            .map(|(k, v)| 8 + k.len() + v.len())
            .sum::<usize>()
}

/// Refuses `code` if its stored form would pass `max` bytes or it has too many tags.
pub fn check_size(code: &CodeObject, max: usize) -> Result<(), StoreError> {
    let size = encoded_len(code);
    if size > max {
        return Err(StoreError::TooLarge { size, max });
    }
    if code.tags.len() > MAX_TAGS {
        return Err(StoreError::Corrupt(format!(
            "{} tags, more than {MAX_TAGS}",
            code.tags.len()
        )));
    }
    Ok(())
}

/// FNV-1a, 64 bits.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The stored form of `code`, refused past `max` bytes.
pub fn encode(code: &CodeObject, max: usize) -> Result<Vec<u8>, StoreError> {
    check_size(code, max)?;
    let mut out = Vec::with_capacity(encoded_len(code));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    // Lengths fit in u32: the whole is under `max`, a usize the caller chose, and every
    // length is checked against u32 below rather than truncated.
    let field = |out: &mut Vec<u8>, b: &[u8]| -> Result<(), StoreError> {
        let n = u32::try_from(b.len()).map_err(|_| StoreError::TooLarge { size: b.len(), max })?;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(b);
        Ok(())
    };
    field(&mut out, code.id.as_bytes())?;
    field(&mut out, code.version_string.as_bytes())?;
    field(&mut out, code.js.as_bytes())?;
    field(&mut out, &code.wasm)?;
    field(&mut out, &code.wasm_bin)?;
    // Sorted, so one object always encodes to the same bytes.
    let mut tags: Vec<_> = code.tags.iter().collect();
    tags.sort();
    out.extend_from_slice(&(tags.len() as u32).to_le_bytes());
    for (k, v) in tags {
        field(&mut out, k.as_bytes())?;
        field(&mut out, v.as_bytes())?;
    }
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(out)
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], StoreError> {
        if n > self.rest.len() {
            return Err(StoreError::Corrupt(format!(
                "{what}: {n} bytes announced, {} left",
                self.rest.len()
            )));
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }
    fn u32(&mut self, what: &str) -> Result<u32, StoreError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn bytes(&mut self, what: &str) -> Result<&'a [u8], StoreError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    fn string(&mut self, what: &str) -> Result<String, StoreError> {
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| StoreError::Corrupt(format!("{what} is not UTF-8")))
    }
}

/// Reads a stored object, at most `max` bytes long.
pub fn decode(bytes: &[u8], max: usize) -> Result<CodeObject, StoreError> {
    if bytes.len() > max {
        return Err(StoreError::Corrupt(format!(
            "{} bytes, more than store.max_object_bytes ({max})",
            bytes.len()
        )));
    }
    if bytes.len() < FIXED {
        return Err(StoreError::Corrupt(format!("only {} bytes", bytes.len())));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    let mut s = [0u8; 8];
    s.copy_from_slice(sum);
    if checksum(body) != u64::from_le_bytes(s) {
        return Err(StoreError::Corrupt("the checksum does not match".into()));
    }
    let mut r = Reader { rest: body };
    if r.take(8, "magic")? != MAGIC {
        return Err(StoreError::Corrupt("not a roma code object".into()));
    }
    let format = r.u32("format")?;
    if format != FORMAT {
        return Err(StoreError::Corrupt(format!(
            "format {format}; this build reads {FORMAT}"
        )));
    }
    let id = r.string("id")?;
    let version_string = r.string("version")?;
    let js = r.string("js")?;
    let wasm = r.bytes("wasm")?.to_vec();
    let wasm_bin = r.bytes("wasm_bin")?.to_vec();
    let n = r.u32("tag count")? as usize;
    if n > MAX_TAGS {
        return Err(StoreError::Corrupt(format!(
            "{n} tags, more than {MAX_TAGS}"
        )));
    }
    let mut tags = HashMap::with_capacity(n);
    for _ in 0..n {
        let k = r.string("tag key")?;
        let v = r.string("tag value")?;
        tags.insert(k, v);
    }
    if !r.rest.is_empty() {
        return Err(StoreError::Corrupt(format!(
            "{} bytes after the last field",
            r.rest.len()
        )));
    }
    Ok(CodeObject {
        id,
        version_string,
        js,
        wasm,
        wasm_bin,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> CodeObject {
        let mut c = CodeObject::js("v1", "function Handler() { return 1; }");
        c.id = "c".into();
        c.wasm_bin = vec![0, 97, 115, 109];
        c.tags
            .insert("roma.request.wasm_array_name".into(), "w".into());
        c
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let c = sample();
        let a = encode(&c, 1 << 20).unwrap();
        assert_eq!(a.len(), encoded_len(&c));
        assert_eq!(decode(&a, 1 << 20).unwrap(), c);
        assert_eq!(encode(&c.clone(), 1 << 20).unwrap(), a);
    }

    #[test]
    fn refuses_damage_and_oversize() {
        let c = sample();
        let a = encode(&c, 1 << 20).unwrap();
        assert!(matches!(
            encode(&c, a.len() - 1),
            Err(StoreError::TooLarge { .. })
        ));
        assert!(matches!(
            decode(&a, a.len() - 1),
            Err(StoreError::Corrupt(_))
        ));
        for cut in [0, 7, 20, a.len() - 1] {
            assert!(matches!(
                decode(&a[..cut], 1 << 20),
                Err(StoreError::Corrupt(_))
            ));
        }
        let mut flipped = a.clone();
        flipped[30] ^= 1;
        assert!(matches!(
            decode(&flipped, 1 << 20),
            Err(StoreError::Corrupt(_))
        ));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes, 1 << 20);
        }

        #[test]
        fn any_object_round_trips(
            id in ".{0,20}", version in ".{1,20}", js in ".{0,200}",
            wasm in proptest::collection::vec(any::<u8>(), 0..100),
            tags in proptest::collection::hash_map(".{0,10}", ".{0,10}", 0..5),
        ) {
            let c = CodeObject { id, version_string: version, js, wasm, wasm_bin: Vec::new(), tags };
            let a = encode(&c, 1 << 20).unwrap();
            prop_assert_eq!(decode(&a, 1 << 20).unwrap(), c);
        }

        #[test]
        fn a_valid_object_with_a_length_changed_is_refused(pos in 12usize..32, v in any::<u8>()) {
            let a = encode(&sample(), 1 << 20).unwrap();
            let mut b = a.clone();
            b[pos] = v;
            if b != a {
                prop_assert!(decode(&b, 1 << 20).is_err());
            }
        }
    }
}
