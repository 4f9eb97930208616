//! One WebSocket frame of the sync protocol, decoded into its messages.

use yrs::encoding::read::Cursor;
use yrs::sync::{Message, MessageReader};
use yrs::updates::decoder::DecoderV1;

/// Every y-protocols message of one inbound frame (several are allowed), or why the frame
/// is not one.
pub fn decode_frame(frame: &[u8]) -> Result<Vec<Message>, String> {
    plausible(frame)?;
    // yrs asserts what it decodes in places (a client id over 53 bits in a state vector,
    // found by fuzzing): a hostile frame is refused, never a panic.
    std::panic::catch_unwind(|| {
        let mut decoder = DecoderV1::new(Cursor::new(frame));
        MessageReader::new(&mut decoder)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("undecodable y-protocols message: {e}"))
    })
    .unwrap_or_else(|_| Err("malformed y-protocols message".into()))
}

/// lib0's variable-length unsigned integer at `pos` (None: truncated or too long).
fn read_var(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// lib0's length-prefixed byte buffer at `pos`.
fn read_buffer<'a>(bytes: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(read_var(bytes, pos)?).ok()?;
    let end = pos.checked_add(len).filter(|end| *end <= bytes.len())?;
    let buffer = &bytes[*pos..end];
    *pos = end;
    Some(buffer)
}

/// A payload (a state vector, an update, an awareness update) starts with how many
/// entries it holds, and yrs reserves room for them before reading any. Each entry takes
/// at least `min_entry` bytes, so a payload may not declare more than its length allows: a
/// few bytes declaring millions of entries would have the server reserve hundreds of MB
/// (found by fuzzing).
pub fn counts_fit(payload: &[u8], min_entry: usize) -> Result<(), String> {
    let mut pos = 0;
    match read_var(payload, &mut pos) {
        Some(count) if count > (payload.len() / min_entry) as u64 => Err(format!(
            "a payload of {} bytes declares {count} entries",
            payload.len()
        )),
        _ => Ok(()),
    }
}

/// Checks every message of a frame for counts its payload cannot hold, before yrs
/// decodes it. Whatever this cannot read is left to yrs to refuse.
fn plausible(frame: &[u8]) -> Result<(), String> {
    let mut pos = 0;
    while pos < frame.len() {
        let Some(kind) = read_var(frame, &mut pos) else {
            return Ok(());
        };
        let (payload, min_entry) = match kind {
            // Sync: step 1 carries a state vector (client, clock); step 2 and updates an
            // update (blocks, client, clock per client).
            0 => {
                let Some(sync) = read_var(frame, &mut pos) else {
                    return Ok(());
                };
                let Some(payload) = read_buffer(frame, &mut pos) else {
                    return Ok(());
                };
                match sync {
                    0 => (payload, 2),
                    1 | 2 => (payload, 3),
                    _ => return Ok(()),
                }
            }
            // Awareness: (client, clock, state) per entry.
            1 => {
                let Some(payload) = read_buffer(frame, &mut pos) else {
                    return Ok(());
                };
                (payload, 3)
            }
            // Auth: a kind, and a reason when permission is denied.
            2 => {
                match read_var(frame, &mut pos) {
                    Some(0) if read_buffer(frame, &mut pos).is_some() => {}
                    Some(1..) => {}
                    _ => return Ok(()),
                }
                continue;
            }
            // An awareness query carries nothing.
            3 => continue,
            // Any other kind: a buffer yrs keeps as is.
            _ => match read_buffer(frame, &mut pos) {
                Some(_) => continue,
                None => return Ok(()),
            },
        };
        counts_fit(payload, min_entry)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_into_messages_or_say_why_not() {
        // Sync step 1 with an empty state vector, then a query for awareness.
        let messages = decode_frame(&[0, 0, 1, 0, 3]).unwrap();
        assert_eq!(messages.len(), 2);
        // An unknown sync message kind; a reason that is not UTF-8.
        assert!(decode_frame(&[0, 7, 0]).is_err());
        assert!(decode_frame(&[2, 0, 2, 0xff, 0xfe]).is_err());
        // Found by fuzzing: a state vector with a client id over 53 bits (yrs asserts it in
        // builds with debug assertions).
        let hostile = [
            0x00, 0x00, 0x0a, 0x62, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0xd3, 0x24, 0x0a, 0x00,
            0x05, 0x08, 0x01, 0x00, 0x00, 0x00, 0xff, 0xfe, 0x2c,
        ];
        let decoded = decode_frame(&hostile);
        if cfg!(debug_assertions) {
            assert!(decoded.is_err());
        }
        // Found by fuzzing: a few bytes declaring millions of entries (yrs would reserve
        // room for them first) are refused before yrs reads them.
        for bomb in [
            &[
                0x00, 0x01, 0x0a, 0xfd, 0x93, 0xf5, 0xff, 0x00, 0xf8, 0xda, 0xda, 0xd1, 0x25, 0x25,
            ][..],
            &[
                0x00, 0x00, 0x0a, 0xff, 0xff, 0xff, 0xff, 0x31, 0xff, 0xff, 0x0b, 0xfe, 0x00,
            ][..],
            &[0x01, 0x04, 0xff, 0xff, 0xff, 0x0f][..],
            // After an auth message and a custom one.
            &[
                0x02, 0x01, 0x07, 0x01, 0x00, 0x00, 0x01, 0x04, 0xff, 0xff, 0xff, 0x0f,
            ][..],
        ] {
            let started = std::time::Instant::now();
            assert!(
                decode_frame(bomb).unwrap_err().contains("declares"),
                "{bomb:?}"
            );
            assert!(started.elapsed() < std::time::Duration::from_millis(50));
        }
        // yrs reads a frame that ends mid-message as the messages before it.
        assert_eq!(decode_frame(&[0, 2, 200]).unwrap().len(), 0);
    }
}
