//! Fuzz target: the bencode decoder must never panic, and whatever it decodes
//! must survive a canonical re-encode and decode again to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringseed::bencode::{decode, decode_prefix, OwnedValue};

fuzz_target!(|data: &[u8]| {
    if let Ok((value, consumed)) = decode_prefix(data) {
        assert!(
            consumed <= data.len(),
            "decode_prefix claimed more bytes than given"
        );
        assert_eq!(value.offset, 0, "the top-level value starts at byte 0");
        assert_eq!(
            value.raw.len(),
            consumed,
            "the top-level value's bytes are those consumed"
        );
    }
    if let Ok(value) = decode(data) {
        let owned = OwnedValue::from(&value);
        let encoded = owned.encode();
        let again = match decode(&encoded) {
            Ok(v) => v,
            Err(e) => panic!("canonical re-encoding does not decode: {e}"),
        };
        assert_eq!(OwnedValue::from(&again), owned, "re-encoded value differs");
        // Canonical bytes are a fixed point.
        assert_eq!(OwnedValue::from(&again).encode(), encoded);
    }
});
