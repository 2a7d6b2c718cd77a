//! Fuzz target: parsing any text as a magnet URI must never panic, and a magnet
//! that parses must be written back (`to_uri`) as text that parses to the same
//! magnet. The one allowed exception: the written text is longer than the
//! URI limit (escaping and base32-to-hex can lengthen it), and then the error
//! must say exactly that.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringseed::limits::MAGNET_URI_BYTES_MAX;
use ringseed::magnet::{Magnet, MagnetError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(magnet) = Magnet::parse(text) else {
        return;
    };
    let uri = magnet.to_uri();
    match Magnet::parse(&uri) {
        Ok(again) => {
            assert_eq!(again, magnet, "round trip changed the magnet via {uri:?}");
            assert_eq!(again.to_uri(), uri, "writing is not stable");
        }
        Err(MagnetError::TooLong { .. }) if uri.len() > MAGNET_URI_BYTES_MAX => {}
        Err(e) => panic!("to_uri wrote {uri:?}, which does not parse: {e}"),
    }
});
