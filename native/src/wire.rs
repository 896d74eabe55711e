//! Avro binary primitives, read the way broker/trust/sd/wire.py reads them.
//!
//! Every function here mirrors one of the reference's and fails where it
//! fails, with its reason code and its detail text: the differential tests
//! (tests/unit/test_native_core.py) hold the two to that.

/// Why bytes were refused: the reference raises `WireError(reason, detail)`,
/// or `IndexError` where the bytes end early (`Truncated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Wire(&'static str, String),
    Truncated,
}

pub type Read<T> = Result<(T, usize), Refusal>;

pub fn wire<T>(reason: &'static str, detail: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::Wire(reason, detail.into()))
}

const MAX_VARINT_BYTES: usize = 10;

#[inline]
pub fn byte_at(data: &[u8], pos: usize) -> Result<u8, Refusal> {
    data.get(pos).copied().ok_or(Refusal::Truncated)
}

/// A zigzag varint at `pos`; over-long forms are refused (`read_long`).
#[inline]
pub fn read_long(data: &[u8], pos: usize) -> Read<i64> {
    let first = byte_at(data, pos)?;
    if first < 0x80 {
        return Ok((unzigzag(u64::from(first)), pos + 1));
    }
    let mut raw: u128 = u128::from(first & 0x7F);
    let mut shift = 7u32;
    let end = pos + MAX_VARINT_BYTES;
    let mut pos = pos + 1;
    let mut byte;
    loop {
        byte = byte_at(data, pos)?;
        pos += 1;
        raw |= u128::from(byte & 0x7F) << shift;
        if byte < 0x80 {
            break;
        }
        if pos >= end {
            return wire("varint_too_long", "a number runs over ten bytes");
        }
        shift += 7;
    }
    if byte == 0 {
        return wire("non_canonical", "a number has an over-long encoding");
    }
    if raw >= 1u128 << 64 {
        return wire("varint_too_long", "a number exceeds 64 bits");
    }
    Ok((unzigzag(raw as u64), pos))
}

#[inline]
fn unzigzag(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

pub fn write_long(value: i64, out: &mut Vec<u8>) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw > 0x7F {
        out.push(((raw & 0x7F) as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

pub fn write_bytes(value: &[u8], out: &mut Vec<u8>) {
    write_long(value.len() as i64, out);
    out.extend_from_slice(value);
}

/// A length at `pos` of at most `limit` (`_length`).
#[inline]
pub fn read_length(data: &[u8], pos: usize, limit: i64) -> Read<usize> {
    let (size, pos) = read_long(data, pos)?;
    if size < 0 {
        return wire("negative_length", "a negative length");
    }
    if size > limit {
        return wire(
            "bytes_too_long",
            format!("a length of {size} exceeds {limit}"),
        );
    }
    Ok((size as usize, pos))
}

/// A length-prefixed byte string of at most `limit` bytes (`read_bytes`).
#[inline]
pub fn read_bytes(data: &[u8], pos: usize, limit: i64) -> Read<&[u8]> {
    let (size, pos) = read_length(data, pos, limit)?;
    let end = pos.checked_add(size).ok_or(Refusal::Truncated)?;
    if end > data.len() {
        return Err(Refusal::Truncated);
    }
    Ok((&data[pos..end], end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_round_trip() {
        for value in [0i64, 1, -1, 63, -64, 64, 1 << 40, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            write_long(value, &mut out);
            assert_eq!(read_long(&out, 0), Ok((value, out.len())));
        }
    }

    #[test]
    fn an_over_long_number_is_non_canonical() {
        assert!(matches!(
            read_long(&[0x80, 0x00], 0),
            Err(Refusal::Wire("non_canonical", _))
        ));
    }

    #[test]
    fn eleven_bytes_run_over() {
        let data = [0xFFu8; 11];
        assert!(matches!(
            read_long(&data, 0),
            Err(Refusal::Wire("varint_too_long", _))
        ));
    }
}
