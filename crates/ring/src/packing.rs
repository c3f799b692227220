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

    /// Writes the low `bits` bits of `value` (`bits ≤ 64`).
    #[inline]
    pub fn write(&mut self, value: u64, bits: u32) {
        debug_assert!(bits <= 64 && (bits == 64 || value >> bits == 0));
        self.acc |= (value as u128) << self.filled;
        self.filled += bits;
        while self.filled >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.filled -= 8;
        }
    }

    /// Flushes the last partial byte (zero-padded).
    pub fn finish(self) {
        if self.filled > 0 {
            self.out.push(self.acc as u8);
        }
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

    /// The next `bits`-bit value, or `None` when the input ends first.
    #[inline]
    pub fn read(&mut self, bits: u32) -> Option<u64> {
        while self.filled < bits {
            let byte = *self.data.get(self.pos)?;
            self.acc |= (byte as u128) << self.filled;
            self.pos += 1;
            self.filled += 8;
        }
        let v = (self.acc & ((1u128 << bits) - 1)) as u64;
        self.acc >>= bits;
        self.filled -= bits;
        Some(v)
    }

    /// Bytes consumed so far (the partial byte counts as consumed).
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// Whether the bits left in the current byte are all zero (canonical padding).
    pub fn padding_is_zero(&self) -> bool {
        self.acc == 0
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
        }
    }
}
