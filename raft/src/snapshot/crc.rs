//! CRC-32C (Castagnoli), the checksum of stored snapshots.

const POLY: u32 = 0x82F6_3B78;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Extends the CRC-32C `crc` (0 to start) over `data`.
pub fn crc32c(crc: u32, data: &[u8]) -> u32 {
    let mut crc = !crc;
    for &byte in data {
        crc = TABLE[((crc ^ byte as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::crc32c;

    #[test]
    fn known_vector_and_incremental() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(0, b"123456789"), 0xE306_9283);
        let whole = crc32c(0, b"hello world");
        let parts = crc32c(crc32c(0, b"hello "), b"world");
        assert_eq!(whole, parts);
        assert_ne!(whole, crc32c(0, b"hello worle"));
    }
}
