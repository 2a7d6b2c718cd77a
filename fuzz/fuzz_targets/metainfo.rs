//! Fuzz target: reading a .torrent file must never panic, whatever its bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringseed::metainfo::Metainfo;

fuzz_target!(|data: &[u8]| {
    let _ = Metainfo::from_bytes(data);
});
