//! The records of a ZIP archive written as a stream (APPNOTE 6.3.10), for exports people
//! open on Windows: each entry is a local header, the bytes as they are (stored: the
//! files are audio and PDFs, compressed already) and a data descriptor carrying the
//! CRC-32 known only once the bytes have passed; the central directory, one record per
//! entry, is written to a part of its own as the entries go and appended at the end,
//! followed by the ZIP64 end records. Every size and offset is ZIP64 (8 bytes), so an
//! export of any size and any number of entries opens alike.

/// Version 4.5: ZIP64.
const VERSION: u16 = 45;
/// Bit 3: sizes and CRC follow the data; bit 11: names are UTF-8.
const FLAGS: u16 = 0x0808;
/// Made by Unix (upper byte 3), spec version 4.5.
const MADE_BY: u16 = (3 << 8) | VERSION;

/// The DOS time and date of a Unix time (UTC; DOS times start in 1980).
fn dos_time(mtime: u64) -> (u16, u16) {
    let at = chrono::DateTime::from_timestamp(i64::try_from(mtime).unwrap_or(0), 0)
        .unwrap_or_default()
        .naive_utc();
    use chrono::{Datelike, Timelike};
    if at.year() < 1980 {
        return (0, (1 << 5) | 1); // 1980-01-01 00:00
    }
    let time = ((at.hour() << 11) | (at.minute() << 5) | (at.second() / 2)) as u16;
    let date = ((((at.year() - 1980) as u32) << 9) | (at.month() << 5) | at.day()) as u16;
    (time, date)
}

/// The local header of an entry whose sizes and CRC come after its bytes.
pub fn local_header(path: &str, mtime: u64) -> Vec<u8> {
    let (time, date) = dos_time(mtime);
    // ZIP64 extra field with zero sizes: the data descriptor has the real ones.
    let extra = zip64_extra(&[0, 0]);
    let mut h = Vec::with_capacity(30 + path.len() + extra.len());
    h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&FLAGS.to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes()); // stored
    h.extend_from_slice(&time.to_le_bytes());
    h.extend_from_slice(&date.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes()); // CRC: in the descriptor
    h.extend_from_slice(&u32::MAX.to_le_bytes()); // sizes: ZIP64
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(&(path.len() as u16).to_le_bytes());
    h.extend_from_slice(&(extra.len() as u16).to_le_bytes());
    h.extend_from_slice(path.as_bytes());
    h.extend_from_slice(&extra);
    h
}

/// What follows an entry's bytes: its CRC-32 and sizes (8 bytes each, as ZIP64 says).
pub fn data_descriptor(crc: u32, size: u64) -> [u8; 24] {
    let mut d = [0u8; 24];
    d[0..4].copy_from_slice(&0x0807_4b50u32.to_le_bytes());
    d[4..8].copy_from_slice(&crc.to_le_bytes());
    d[8..16].copy_from_slice(&size.to_le_bytes());
    d[16..24].copy_from_slice(&size.to_le_bytes());
    d
}

/// An entry's record in the central directory; `offset` is where its local header is.
pub fn central_record(path: &str, mtime: u64, crc: u32, size: u64, offset: u64) -> Vec<u8> {
    let (time, date) = dos_time(mtime);
    let extra = zip64_extra(&[size, size, offset]);
    let mut r = Vec::with_capacity(46 + path.len() + extra.len());
    r.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    r.extend_from_slice(&MADE_BY.to_le_bytes());
    r.extend_from_slice(&VERSION.to_le_bytes());
    r.extend_from_slice(&FLAGS.to_le_bytes());
    r.extend_from_slice(&0u16.to_le_bytes()); // stored
    r.extend_from_slice(&time.to_le_bytes());
    r.extend_from_slice(&date.to_le_bytes());
    r.extend_from_slice(&crc.to_le_bytes());
    r.extend_from_slice(&u32::MAX.to_le_bytes()); // sizes and offset: in the ZIP64 field
    r.extend_from_slice(&u32::MAX.to_le_bytes());
    r.extend_from_slice(&(path.len() as u16).to_le_bytes());
    r.extend_from_slice(&(extra.len() as u16).to_le_bytes());
    r.extend_from_slice(&0u16.to_le_bytes()); // comment
    r.extend_from_slice(&0u16.to_le_bytes()); // disk
    r.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
    r.extend_from_slice(&((0o100_644u32) << 16).to_le_bytes()); // a regular file, rw-r--r--
    r.extend_from_slice(&u32::MAX.to_le_bytes());
    r.extend_from_slice(path.as_bytes());
    r.extend_from_slice(&extra);
    r
}

/// The end of the archive: the ZIP64 end of central directory, its locator, and the
/// classic end record that points readers at them.
pub fn end_records(entries: u64, central_offset: u64, central_len: u64) -> Vec<u8> {
    let zip64_end_offset = central_offset + central_len;
    let mut e = Vec::with_capacity(56 + 20 + 22);
    e.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
    e.extend_from_slice(&44u64.to_le_bytes()); // size of the rest of this record
    e.extend_from_slice(&MADE_BY.to_le_bytes());
    e.extend_from_slice(&VERSION.to_le_bytes());
    e.extend_from_slice(&0u32.to_le_bytes()); // this disk
    e.extend_from_slice(&0u32.to_le_bytes()); // the central directory's disk
    e.extend_from_slice(&entries.to_le_bytes());
    e.extend_from_slice(&entries.to_le_bytes());
    e.extend_from_slice(&central_len.to_le_bytes());
    e.extend_from_slice(&central_offset.to_le_bytes());
    e.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
    e.extend_from_slice(&0u32.to_le_bytes());
    e.extend_from_slice(&zip64_end_offset.to_le_bytes());
    e.extend_from_slice(&1u32.to_le_bytes()); // disks
    e.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    e.extend_from_slice(&[0u8; 4]); // disks
    e.extend_from_slice(&u16::MAX.to_le_bytes());
    e.extend_from_slice(&u16::MAX.to_le_bytes());
    e.extend_from_slice(&u32::MAX.to_le_bytes());
    e.extend_from_slice(&u32::MAX.to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes()); // comment
    e
}

fn zip64_extra(values: &[u64]) -> Vec<u8> {
    let mut x = Vec::with_capacity(4 + 8 * values.len());
    x.extend_from_slice(&0x0001u16.to_le_bytes());
    x.extend_from_slice(&((8 * values.len()) as u16).to_le_bytes());
    for v in values {
        x.extend_from_slice(&v.to_le_bytes());
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_times() {
        // 2026-12-04 12:34:56 UTC
        let (time, date) = dos_time(1_796_387_696);
        assert_eq!(
            (time >> 11, (time >> 5) & 63, (time & 31) * 2),
            (12, 34, 56)
        );
        assert_eq!(
            (1980 + (date >> 9), (date >> 5) & 15, date & 31),
            (2026, 12, 4)
        );
        assert_eq!(dos_time(0), (0, (1 << 5) | 1), "before 1980: its first day");
    }
}
