//! Bit-packing of residues: each value takes exactly the bits its modulus needs.

/// Appends fixed-width values to a byte buffer, least significant bits first.
pub struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u128,
    filled: u32,
}

impl<'a> BitWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            acc: 0,
            filled: 0,
        }
    }

    /// Writes the low `bits` bits of `value` (`bits ≤ 64`), flushing whole 64-bit words.
    #[inline]
    pub fn write(&mut self, value: u64, bits: u32) {
        debug_assert!(bits <= 64 && (bits == 64 || value >> bits == 0));
        self.acc |= (value as u128) << self.filled;
        self.filled += bits;
        if self.filled >= 64 {
            self.out.extend_from_slice(&(self.acc as u64).to_le_bytes());
            self.acc >>= 64;
            self.filled -= 64;
        }
    }

    /// Flushes the last bits, zero-padded to a whole byte.
    pub fn finish(self) {
        let bytes = self.filled.div_ceil(8) as usize;
        self.out
            .extend_from_slice(&(self.acc as u64).to_le_bytes()[..bytes]);
    }
}

/// Reads fixed-width values written by [`BitWriter`].
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u128,
    filled: u32,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            acc: 0,
            filled: 0,
        }
    }

    /// The next `bits`-bit value, or `None` when the input ends first. Loads a 64-bit word at a
    /// time where the input has one left.
    #[inline]
    pub fn read(&mut self, bits: u32) -> Option<u64> {
        if self.filled < bits {
            if let Some(word) = self.data.get(self.pos..self.pos + 8) {
                self.acc |= (u64::from_le_bytes(word.try_into().unwrap()) as u128) << self.filled;
                self.pos += 8;
                self.filled += 64;
            } else {
                while self.filled < bits {
                    let byte = *self.data.get(self.pos)?;
                    self.acc |= (byte as u128) << self.filled;
                    self.pos += 1;
                    self.filled += 8;
                }
            }
        }
        let v = (self.acc & ((1u128 << bits) - 1)) as u64;
        self.acc >>= bits;
        self.filled -= bits;
        Some(v)
    }

    /// Whether every bit not yet read — loaded or not — is zero (canonical padding).
    pub fn padding_is_zero(&self) -> bool {
        self.acc == 0 && self.data[self.pos..].iter().all(|&b| b == 0)
    }
}

/// Bytes taken by `count` values of `bits` bits each.
pub fn packed_len(count: usize, bits: u32) -> usize {
    (count * bits as usize).div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(vals in proptest::collection::vec(any::<u64>(), 0..200), bits in 1u32..=64) {
            let vals: Vec<u64> = vals.iter().map(|v| if bits == 64 { *v } else { v & ((1 << bits) - 1) }).collect();
            let mut buf = Vec::new();
            let mut w = BitWriter::new(&mut buf);
            for &v in &vals { w.write(v, bits); }
            w.finish();
            prop_assert_eq!(buf.len(), packed_len(vals.len(), bits));
            let mut r = BitReader::new(&buf);
            for &v in &vals { prop_assert_eq!(r.read(bits), Some(v)); }
            prop_assert!(r.padding_is_zero());
            // a set padding bit is noticed
            if !(vals.len() * bits as usize).is_multiple_of(8) {
                let mut bad = buf.clone();
                *bad.last_mut().unwrap() |= 0x80;
                let mut r = BitReader::new(&bad);
                for _ in &vals { r.read(bits); }
                prop_assert!(!r.padding_is_zero());
            }
        }
    }
}
