//! LZW exactly as Go's `compress/lzw` does it with `LSB` order and `litWidth` 8, which is
//! what memberlist's `compressPayload`/`decompressBuffer` use.
//!
//! Why our own and not `weezl`: byte-for-byte output equal to Go's writer needs Go's exact
//! choices, which differ from a GIF encoder's: Go emits no clear code at the start, emits a
//! clear code as soon as the next code would be 4095 (never using code 4095), and, on `Close`,
//! may emit that clear code right after the final data code, before the EOF code. The decoder
//! mirrors Go's reader: codes 9 to 12 bits wide, the width grows when the next table slot
//! reaches `1 << width`, a full table freezes (no implicit reset) until a clear code, a code
//! above the next slot is an error, the stream must end with the EOF code (257), and bytes
//! after it are ignored. Output is capped so a small input cannot expand without bound.

use crate::error::{Error, Result};

const LIT_WIDTH: u32 = 8;
const CLEAR: u16 = 1 << LIT_WIDTH;
const EOF: u16 = CLEAR + 1;
const MAX_WIDTH: u32 = 12;
/// Go's writer resets before handing out this code (its `maxCode`).
const MAX_CODE: u16 = (1 << MAX_WIDTH) - 1;
const TABLE_SIZE: usize = 1 << MAX_WIDTH;

/// Packs codes least-significant bit first, the order `lzw.LSB` uses.
struct BitWriter {
    out: Vec<u8>,
    bits: u32,
    n_bits: u32,
}

impl BitWriter {
    fn write(&mut self, code: u16, width: u32) {
        self.bits |= u32::from(code) << self.n_bits;
        self.n_bits += width;
        while self.n_bits >= 8 {
            self.out.push(self.bits as u8);
            self.bits >>= 8;
            self.n_bits -= 8;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n_bits > 0 {
            self.out.push(self.bits as u8);
        }
        self.out
    }
}

/// The encoder's dictionary: (prefix code, next byte) -> code, open addressing over a
/// power-of-two table at least four times the codes it can hold, so probes stay short. Sized
/// by the input (one code per input byte at most): a 64 KiB table zeroed for every small UDP
/// packet cost more than compressing it.
struct Dict {
    slots: Vec<u32>,
    mask: usize,
}

impl Dict {
    const EMPTY: u32 = 0;

    /// A dictionary for an input of `len` bytes.
    fn new(len: usize) -> Self {
        let n = (4 * len.min(TABLE_SIZE)).next_power_of_two().max(64);
        Self {
            slots: vec![Self::EMPTY; n],
            mask: n - 1,
        }
    }

    fn clear(&mut self) {
        self.slots.fill(Self::EMPTY);
    }

    fn slot(&self, key: u32) -> usize {
        (((key >> 12) ^ key) as usize) & self.mask
    }

    /// Entries are `key << 12 | code`; codes are >= 258, so a stored entry is never 0.
    fn get(&self, key: u32) -> Option<u16> {
        let mut i = self.slot(key);
        loop {
            let e = self.slots[i];
            if e == Self::EMPTY {
                return None;
            }
            if e >> 12 == key {
                return Some((e & 0xfff) as u16);
            }
            i = (i + 1) & self.mask;
        }
    }

    fn insert(&mut self, key: u32, code: u16) {
        let mut i = self.slot(key);
        while self.slots[i] != Self::EMPTY {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = (key << 12) | u32::from(code);
    }
}

/// The encoder's code-space bookkeeping: `hi` is the code implied by the next emission.
struct Codes {
    width: u32,
    hi: u16,
    overflow: u16,
}

impl Codes {
    fn reset(&mut self) {
        self.width = LIT_WIDTH + 1;
        self.hi = EOF;
        self.overflow = 1 << (LIT_WIDTH + 1);
    }

    /// Go's `incHi`: returns true when the table ran out and a clear code was sent.
    fn inc(&mut self, w: &mut BitWriter, dict: &mut Dict) -> bool {
        self.hi += 1;
        if self.hi == self.overflow {
            self.width += 1;
            self.overflow <<= 1;
        }
        if self.hi == MAX_CODE {
            w.write(CLEAR, self.width);
            self.reset();
            dict.clear();
            return true;
        }
        false
    }
}

/// Compresses `input` into the bytes Go's `lzw.NewWriter(w, lzw.LSB, 8)` writes for it.
pub fn compress(input: &[u8]) -> Vec<u8> {
    let mut w = BitWriter {
        out: Vec::with_capacity(input.len() / 2 + 4),
        bits: 0,
        n_bits: 0,
    };
    let mut codes = Codes {
        width: 0,
        hi: 0,
        overflow: 0,
    };
    codes.reset();
    if let Some((&first, rest)) = input.split_first() {
        let mut dict = Dict::new(input.len());
        let mut code = u16::from(first);
        for &b in rest {
            let key = (u32::from(code) << 8) | u32::from(b);
            if let Some(c) = dict.get(key) {
                code = c;
                continue;
            }
            w.write(code, codes.width);
            code = u16::from(b);
            if !codes.inc(&mut w, &mut dict) {
                dict.insert(key, codes.hi);
            }
        }
        w.write(code, codes.width);
        // Go's Close bumps hi after the last code too, which can send a clear code.
        codes.inc(&mut w, &mut dict);
    }
    w.write(EOF, codes.width);
    w.finish()
}

/// Decompresses Go-compatible LZW, refusing output beyond `limit` bytes.
pub fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut d = Decoder {
        input,
        pos: 0,
        bits: 0,
        n_bits: 0,
        width: LIT_WIDTH + 1,
        hi: EOF,
        overflow: 1 << (LIT_WIDTH + 1),
        last: None,
        // Every code takes at least 9 bits, so the table never grows past one slot per
        // input byte beyond the literals: a small packet needs no 12 KiB zeroed per call.
        prefix: vec![0; table_slots(input.len())],
        suffix: vec![0; table_slots(input.len())],
    };
    d.run(limit)
}

/// Decoder table slots enough for `len` input bytes (see [`decompress`]).
fn table_slots(len: usize) -> usize {
    (usize::from(EOF) + 2 + len).min(TABLE_SIZE)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    bits: u32,
    n_bits: u32,
    width: u32,
    /// The table slot the next data code fills (Go's `hi`); always below `overflow`.
    hi: u16,
    overflow: u16,
    /// The previous code, or `None` right after a clear or while the table is frozen.
    last: Option<u16>,
    prefix: Vec<u16>,
    suffix: Vec<u8>,
}

impl Decoder<'_> {
    fn read_code(&mut self) -> Result<u16> {
        while self.n_bits < self.width {
            let Some(&b) = self.input.get(self.pos) else {
                return Err(Error::Decompress(
                    "LZW data ended before the EOF code".into(),
                ));
            };
            self.pos += 1;
            self.bits |= u32::from(b) << self.n_bits;
            self.n_bits += 8;
        }
        let code = (self.bits & ((1 << self.width) - 1)) as u16;
        self.bits >>= self.width;
        self.n_bits -= self.width;
        Ok(code)
    }

    fn run(&mut self, limit: usize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity((2 * self.input.len()).min(limit));
        // One code expands to at most one byte per table slot; built back to front here.
        let mut scratch = vec![0u8; self.prefix.len() + 1];
        loop {
            let code = self.read_code()?;
            let first = if code < CLEAR {
                push_limited(&mut out, &[code as u8], limit)?;
                code as u8
            } else if code == CLEAR {
                self.width = LIT_WIDTH + 1;
                self.hi = EOF;
                self.overflow = 1 << (LIT_WIDTH + 1);
                self.last = None;
                continue;
            } else if code == EOF {
                return Ok(out);
            } else if code <= self.hi {
                let mut i = scratch.len();
                let mut c = code;
                if let (true, Some(last)) = (code == self.hi, self.last) {
                    // The KwKwK case: the previous string plus its own first byte.
                    let mut head = last;
                    while head >= CLEAR {
                        head = self.prefix[usize::from(head)];
                    }
                    i -= 1;
                    scratch[i] = head as u8;
                    c = last;
                }
                while c >= CLEAR {
                    // Chains strictly decrease (a slot's prefix was assigned before it), but
                    // bound the walk anyway so corrupt state cannot overrun the scratch.
                    if i <= 1 {
                        return Err(Error::Decompress("LZW code chain too long".into()));
                    }
                    i -= 1;
                    scratch[i] = self.suffix[usize::from(c)];
                    c = self.prefix[usize::from(c)];
                }
                i -= 1;
                scratch[i] = c as u8;
                push_limited(&mut out, &scratch[i..], limit)?;
                c as u8
            } else {
                return Err(Error::Decompress(format!(
                    "invalid LZW code {code} (next free {})",
                    self.hi
                )));
            };
            if let Some(last) = self.last {
                self.suffix[usize::from(self.hi)] = first;
                self.prefix[usize::from(self.hi)] = last;
            }
            self.last = Some(code);
            self.hi += 1;
            if self.hi >= self.overflow {
                if self.width == MAX_WIDTH {
                    // Full: keep decoding with a frozen table until a clear code.
                    self.last = None;
                    self.hi -= 1;
                } else {
                    self.width += 1;
                    self.overflow <<= 1;
                }
            }
        }
    }
}

fn push_limited(out: &mut Vec<u8>, bytes: &[u8], limit: usize) -> Result<()> {
    if out.len() + bytes.len() > limit {
        return Err(Error::TooLarge {
            what: "decompressed payload",
            len: out.len() + bytes.len(),
            limit,
        });
    }
    out.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Packs (code, width) pairs LSB-first: how the expected Go output is derived by hand.
    fn pack(codes: &[(u16, u32)]) -> Vec<u8> {
        let mut acc: u128 = 0;
        let mut n = 0;
        for &(c, w) in codes {
            acc |= u128::from(c) << n;
            n += w;
        }
        (0..n.div_ceil(8)).map(|i| (acc >> (8 * i)) as u8).collect()
    }

    #[test]
    fn empty_input_is_just_eof() {
        // Go: Close with no data writes EOF (257) in 9 bits: 0x101 -> 01 01.
        assert_eq!(compress(b""), [0x01, 0x01]);
        assert_eq!(decompress(&[0x01, 0x01], 10), Ok(vec![]));
    }

    #[test]
    fn go_writer_output_for_ab() {
        // 'a' (97), 'b' (98), EOF (257), 9 bits each, no leading clear code.
        let want = pack(&[(97, 9), (98, 9), (257, 9)]);
        assert_eq!(want, [0x61, 0xc4, 0x04, 0x04]);
        assert_eq!(compress(b"ab"), want);
        assert_eq!(decompress(&want, 100), Ok(b"ab".to_vec()));
    }

    #[test]
    fn go_writer_output_for_aaaa_uses_kwkwk() {
        // 'a', then code 258 ("aa") before the decoder has defined it, then 'a', EOF.
        let want = pack(&[(97, 9), (258, 9), (97, 9), (257, 9)]);
        assert_eq!(compress(b"aaaa"), want);
        assert_eq!(decompress(&want, 100), Ok(b"aaaa".to_vec()));
    }

    #[test]
    fn leading_clear_code_is_accepted() {
        // A GIF-style stream that starts with a clear code (256), as weezl writes it.
        let data = pack(&[(256, 9), (97, 9), (98, 9), (257, 9)]);
        assert_eq!(decompress(&data, 100), Ok(b"ab".to_vec()));
    }

    #[test]
    fn missing_eof_and_bad_codes_are_errors() {
        let no_eof = pack(&[(97, 9), (98, 9)]);
        assert!(matches!(
            decompress(&no_eof, 100),
            Err(Error::Decompress(_))
        ));
        // 300 is above the next free slot (258 after one literal).
        let bad = pack(&[(97, 9), (300, 9), (257, 9)]);
        assert!(matches!(decompress(&bad, 100), Err(Error::Decompress(_))));
        // Code 258 right at the start: the next free slot is 257 (EOF), so invalid.
        let bad = pack(&[(258, 9)]);
        assert!(matches!(decompress(&bad, 100), Err(Error::Decompress(_))));
    }

    #[test]
    fn trailing_bytes_after_eof_are_ignored() {
        let mut data = compress(b"hello");
        data.extend_from_slice(&[0xff, 0xff, 0xff]);
        assert_eq!(decompress(&data, 100), Ok(b"hello".to_vec()));
    }

    #[test]
    fn output_limit_is_enforced() {
        let data = compress(&[0u8; 10_000]);
        assert_eq!(decompress(&data, 10_000).map(|v| v.len()), Ok(10_000));
        assert!(matches!(
            decompress(&data, 9_999),
            Err(Error::TooLarge { .. })
        ));
    }

    /// Data long and varied enough to fill the 4096-entry table several times.
    fn table_filler() -> Vec<u8> {
        let mut x: u32 = 12345;
        (0..200_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                // Small alphabet: long matches and a full table.
                b"abcdefgh"[(x >> 16) as usize % 8]
            })
            .collect()
    }

    #[test]
    fn table_resets_round_trip() {
        let data = table_filler();
        let c = compress(&data);
        assert_eq!(decompress(&c, data.len()), Ok(data.clone()));
        // weezl's GIF decoder agrees with our encoder.
        let w = weezl::decode::Decoder::new(weezl::BitOrder::Lsb, 8)
            .decode(&c)
            .unwrap();
        assert_eq!(w, data);
    }

    #[test]
    fn weezl_encoder_output_decodes() {
        // weezl starts with a clear code and manages a full table its own way; Go's reader
        // (mirrored here) must still accept it.
        for data in [table_filler(), b"TOBEORNOTTOBEORTOBEORNOT".to_vec(), vec![]] {
            let c = weezl::encode::Encoder::new(weezl::BitOrder::Lsb, 8)
                .encode(&data)
                .unwrap();
            assert_eq!(decompress(&c, usize::MAX), Ok(data));
        }
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let c = compress(&data);
            prop_assert_eq!(decompress(&c, usize::MAX), Ok(data.clone()));
            let w = weezl::decode::Decoder::new(weezl::BitOrder::Lsb, 8).decode(&c).unwrap();
            prop_assert_eq!(w, data);
        }

        #[test]
        fn round_trip_low_entropy(data in proptest::collection::vec(0u8..3, 0..20000)) {
            let c = compress(&data);
            prop_assert_eq!(decompress(&c, usize::MAX), Ok(data));
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = decompress(&data, 1 << 20);
        }
    }
}
