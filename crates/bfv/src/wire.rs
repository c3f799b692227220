//! The compact, versioned wire format of every Concord value (keys, ciphertexts, protocol shares).
//!
//! ```text
//! "CNCD" | format version (u8) | kind (u8) | parameter-set id (u16 LE) | body | SHA-256(all before)[..16]
//! ```
//! Residues are bit-packed to their modulus size (`⌈log2 q_j⌉` bits each), so a level-ℓ
//! polynomial takes `N · Σ_{j<ℓ} ⌈log2 q_j⌉ / 8` bytes. A value is refused — with an error
//! saying why, never a panic — when it is truncated, of another kind, of another parameter set,
//! of an unknown format version, fails its checksum (corruption or tampering in transit or at
//! rest; deliberate forgery is for signatures, one layer up), or holds a non-canonical residue.

use crate::params::BfvParameters;
use concord_ring::packing::{packed_len, BitReader, BitWriter};
use concord_ring::{Poly, Representation, RnsContext};
use sha2::{Digest, Sha256};

pub const MAGIC: [u8; 4] = *b"CNCD";
pub const FORMAT_VERSION: u8 = 1;
/// Header bytes: magic, version, kind, parameter-set id.
pub const HEADER_LEN: usize = 8;
/// Trailing checksum bytes.
pub const CHECKSUM_LEN: usize = 16;

/// What a serialized value is. One registry for the whole project, so tags never collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Ciphertext = 1,
    PublicKey = 2,
    SecretKey = 3,
    /// A relinearization key (`b_j`, `a_j` per gadget digit, key ring, NTT form).
    RelinearizationKey = 4,
    PublicKeyShare = 16,
    DecryptionShare = 17,
    KeySwitchShare = 18,
    // 19 and 20 were the Shamir resharing and threshold key, retired as unsound (issue 15)
    EvaluationKeyShare = 21,
    EvaluationKeyAggregate = 22,
    /// Replicated sharing (`concord-mhe` `threshold`).
    ThresholdResharing = 23,
    ThresholdSecretKey = 24,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Self> {
        use Kind::*;
        [
            Ciphertext,
            PublicKey,
            SecretKey,
            RelinearizationKey,
            PublicKeyShare,
            DecryptionShare,
            KeySwitchShare,
            ThresholdResharing,
            ThresholdSecretKey,
            EvaluationKeyShare,
            EvaluationKeyAggregate,
        ]
        .into_iter()
        .find(|k| *k as u8 == v)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum WireError {
    #[error("truncated value: {have} bytes where at least {need} are needed")]
    Truncated { need: usize, have: usize },
    #[error("not a Concord value (bad magic bytes)")]
    Magic,
    #[error("format version {0} is not supported (this build reads version {FORMAT_VERSION})")]
    Version(u8),
    #[error("expected a {expected:?}, got {}", found.map(|k| format!("{k:?}")).unwrap_or_else(|| "value of unknown kind".into()))]
    Kind { expected: Kind, found: Option<Kind> },
    #[error("value belongs to parameter set #{found}, not to {expected_name} (#{expected})")]
    Parameters {
        expected: u16,
        expected_name: &'static str,
        found: u16,
    },
    #[error("checksum mismatch: the value was corrupted or altered")]
    Checksum,
    #[error("malformed value: {0}")]
    Malformed(String),
    #[error("{0} unexpected bytes after the value")]
    Trailing(usize),
}

/// Writes one value: header, body, checksum.
pub struct WireWriter {
    buf: Vec<u8>,
}

impl WireWriter {
    pub fn new(kind: Kind, params: &BfvParameters, body_capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_LEN + body_capacity + CHECKSUM_LEN);
        buf.extend_from_slice(&MAGIC);
        buf.push(FORMAT_VERSION);
        buf.push(kind as u8);
        buf.extend_from_slice(&params.id().to_le_bytes());
        Self { buf }
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn i128(&mut self, v: i128) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// The residues of `p`, each packed to its modulus size (level and representation are the
    /// caller's to write or to imply).
    pub fn poly(&mut self, ring: &RnsContext, p: &Poly) -> &mut Self {
        let mut w = BitWriter::new(&mut self.buf);
        for (j, m) in ring.moduli()[..p.level()].iter().enumerate() {
            for &r in p.residues(j) {
                w.write(r, m.bits());
            }
        }
        w.finish();
        self
    }

    /// `values`, each packed to `bits` bits.
    pub fn packed(&mut self, values: &[u64], bits: u32) -> &mut Self {
        let mut w = BitWriter::new(&mut self.buf);
        for &v in values {
            w.write(v, bits);
        }
        w.finish();
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        let digest = Sha256::digest(&self.buf);
        self.buf.extend_from_slice(&digest[..CHECKSUM_LEN]);
        self.buf
    }
}

/// Bytes a level-ℓ polynomial takes.
pub fn poly_len(ring: &RnsContext, level: usize) -> usize {
    ring.moduli()[..level]
        .iter()
        .map(|m| packed_len(ring.degree(), m.bits()))
        .sum()
}

/// The parameter-set id a serialized value claims, read before choosing how to parse it.
pub fn peek_parameter_set(bytes: &[u8]) -> Result<u16, WireError> {
    if bytes.len() < HEADER_LEN {
        return Err(WireError::Truncated {
            need: HEADER_LEN,
            have: bytes.len(),
        });
    }
    if bytes[..4] != MAGIC {
        return Err(WireError::Magic);
    }
    Ok(u16::from_le_bytes([bytes[6], bytes[7]]))
}

/// Reads one value's body after checking its header and checksum.
pub struct WireReader<'a> {
    body: &'a [u8],
    pos: usize,
}

impl<'a> WireReader<'a> {
    pub fn open(bytes: &'a [u8], kind: Kind, params: &BfvParameters) -> Result<Self, WireError> {
        let min = HEADER_LEN + CHECKSUM_LEN;
        if bytes.len() < min {
            return Err(WireError::Truncated {
                need: min,
                have: bytes.len(),
            });
        }
        if bytes[..4] != MAGIC {
            return Err(WireError::Magic);
        }
        if bytes[4] != FORMAT_VERSION {
            return Err(WireError::Version(bytes[4]));
        }
        if bytes[5] != kind as u8 {
            return Err(WireError::Kind {
                expected: kind,
                found: Kind::from_u8(bytes[5]),
            });
        }
        let found = u16::from_le_bytes([bytes[6], bytes[7]]);
        if found != params.id() {
            return Err(WireError::Parameters {
                expected: params.id(),
                expected_name: params.name(),
                found,
            });
        }
        let (content, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if Sha256::digest(content)[..CHECKSUM_LEN] != *checksum {
            return Err(WireError::Checksum);
        }
        Ok(Self {
            body: &content[HEADER_LEN..],
            pos: 0,
        })
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        let rest = &self.body[self.pos..];
        if rest.len() < len {
            return Err(WireError::Truncated {
                need: HEADER_LEN + self.pos + len + CHECKSUM_LEN,
                have: HEADER_LEN + self.body.len() + CHECKSUM_LEN,
            });
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    pub fn i128(&mut self) -> Result<i128, WireError> {
        Ok(i128::from_le_bytes(self.take(16)?.try_into().unwrap()))
    }

    pub fn array<const K: usize>(&mut self) -> Result<[u8; K], WireError> {
        Ok(self.take(K)?.try_into().unwrap())
    }

    /// A level, checked against the ring.
    pub fn level(&mut self, ring: &RnsContext) -> Result<usize, WireError> {
        let level = self.u8()? as usize;
        if level == 0 || level > ring.max_level() {
            return Err(WireError::Malformed(format!(
                "level {level} outside 1..={}",
                ring.max_level()
            )));
        }
        Ok(level)
    }

    /// A polynomial written by [`WireWriter::poly`]; every residue must be reduced.
    pub fn poly(
        &mut self,
        ring: &RnsContext,
        level: usize,
        repr: Representation,
    ) -> Result<Poly, WireError> {
        let n = ring.degree();
        let mut data = Vec::with_capacity(level * n);
        for m in &ring.moduli()[..level] {
            let bytes = self.take(packed_len(n, m.bits()))?;
            let mut r = BitReader::new(bytes);
            for _ in 0..n {
                data.push(r.read(m.bits()).expect("length checked"));
            }
            if !r.padding_is_zero() {
                return Err(WireError::Malformed("non-zero padding bits".into()));
            }
        }
        Poly::from_residues(ring, level, repr, data)
            .ok_or_else(|| WireError::Malformed("residue not reduced modulo its prime".into()))
    }

    /// `count` values of `bits` bits.
    pub fn packed(&mut self, count: usize, bits: u32) -> Result<Vec<u64>, WireError> {
        let bytes = self.take(packed_len(count, bits))?;
        let mut r = BitReader::new(bytes);
        let out = (0..count)
            .map(|_| r.read(bits).expect("length checked"))
            .collect();
        if !r.padding_is_zero() {
            return Err(WireError::Malformed("non-zero padding bits".into()));
        }
        Ok(out)
    }

    /// Succeeds only if the whole body was read.
    pub fn finish(self) -> Result<(), WireError> {
        match self.body.len() - self.pos {
            0 => Ok(()),
            extra => Err(WireError::Trailing(extra)),
        }
    }
}
