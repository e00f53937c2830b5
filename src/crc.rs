//! The CRC-64 of dumps and DUMP payloads (format §1.1): computed by the decoder and the sources
//! (the trailer check), the payload builder and the RDB writer. A leaf: it imports nothing else of
//! the crate.

/// CRC-64/Jones as Redis computes it (format §1.1: poly 0xad93d23594c935a9, reflected, init 0,
/// no xorout), with `crc-fast`'s SIMD (PCLMULQDQ) folding. It replaced table-driven slicing-by-16
/// (`crc` crate, ~1.5 GiB/s here), which made the trailer check the largest cost of decoding big
/// values. `init` continues a running checksum.
///
/// ```
/// assert_eq!(rdbkit::crc64(0, b"123456789"), 0xe9c6d914c4b8d9ca);
/// assert_eq!(rdbkit::crc64(rdbkit::crc64(0, b"1234"), b"56789"), 0xe9c6d914c4b8d9ca);
/// ```
pub fn crc64(init: u64, data: &[u8]) -> u64 {
    if init == 0 {
        // the one-shot entry point skips the parameter lookup of `Digest`: half the time on the
        // short inputs that DUMP payloads of small keys are (14 vs 28 ns at 40 bytes here)
        return crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, data);
    }
    let mut d = crc_fast::Digest::new_with_init_state(crc_fast::CrcAlgorithm::Crc64Redis, init);
    d.update(data);
    d.finalize()
}

/// The CRC64 (as [`crc64`]) of `a` followed by `b`, from the CRC64s of `a` and `b` and the length
/// of `b`: how the checksums of spans hashed on different threads are joined in file order.
///
/// Hand-written because `crc_fast::checksum_combine` builds its GF(2) operators afresh on every
/// call (Mark Adler's generic `crccomb.c`): ~140 µs a call here, most of the CPU of a parallel
/// `info`. The operators for 2^k zero bytes are built once; a call applies one per set bit of
/// `len_b` (~1 µs).
///
/// ```
/// let (a, b) = (&b"1234"[..], &b"56789"[..]);
/// let joined = rdbkit::crc64_combine(rdbkit::crc64(0, a), rdbkit::crc64(0, b), b.len() as u64);
/// assert_eq!(joined, rdbkit::crc64(0, b"123456789"));
/// ```
pub fn crc64_combine(crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
    let ops = zeros_operators();
    let mut crc = crc_a;
    let mut len = len_b;
    let mut k = 0;
    while len != 0 {
        if len & 1 == 1 {
            crc = gf2_times(&ops[k], crc);
        }
        len >>= 1;
        k += 1;
    }
    // init 0 and no xorout (format §1.1): nothing else to undo or redo
    crc ^ crc_b
}

/// A 64×64 GF(2) matrix as its columns.
type Gf2Matrix = [u64; 64];

fn gf2_times(m: &Gf2Matrix, v: u64) -> u64 {
    let mut sum = 0;
    for (i, col) in m.iter().enumerate() {
        // branch-free: the bits of a CRC are as good as random
        sum ^= col & 0u64.wrapping_sub((v >> i) & 1);
    }
    sum
}

fn gf2_square(m: &Gf2Matrix) -> Gf2Matrix {
    std::array::from_fn(|i| gf2_times(m, m[i]))
}

/// `ops[k]` appends 2^k zero bytes to a reflected CRC-64/Jones register.
fn zeros_operators() -> &'static [Gf2Matrix; 64] {
    static OPS: std::sync::OnceLock<Box<[Gf2Matrix; 64]>> = std::sync::OnceLock::new();
    OPS.get_or_init(|| {
        // one zero bit: shift right, and fold the polynomial (reflected) in when bit 0 was set
        let mut bit: Gf2Matrix = std::array::from_fn(|i| if i == 0 { 0 } else { 1 << (i - 1) });
        bit[0] = 0x95ac_9329_ac4b_c9b5; // 0xad93d23594c935a9 reflected
        let mut op = gf2_square(&gf2_square(&gf2_square(&bit)));
        let mut ops = Box::new([[0u64; 64]; 64]);
        for slot in ops.iter_mut() {
            *slot = op;
            op = gf2_square(&op);
        }
        ops
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_combine_equals_the_crc_of_the_concatenation() {
        // lengths around the operator boundaries (powers of two) and the SIMD block sizes
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..70_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for split in [
            0, 1, 7, 8, 15, 16, 63, 64, 65, 255, 256, 4095, 4096, 65_536, 70_000,
        ] {
            for len_b in [
                0usize, 1, 2, 3, 31, 32, 127, 128, 129, 1000, 4096, 65_535, 70_000,
            ] {
                let end = (split + len_b).min(data.len());
                let (a, b) = (&data[..split], &data[split..end]);
                assert_eq!(
                    crc64_combine(crc64(0, a), crc64(0, b), b.len() as u64),
                    crc64(0, &data[..end]),
                    "split {split} len {}",
                    b.len()
                );
            }
        }
    }
}
