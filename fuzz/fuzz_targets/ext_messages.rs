//! Fuzz target: the BEP 9 (`ut_metadata`) and BEP 11 (`ut_pex`) extended
//! message payloads. The same bytes go to both parsers; neither may panic,
//! and a message that parses is encoded again and must parse to an equal
//! message (and, for `ut_pex`, encode to the same bytes again). A parsed
//! `ut_pex` message keeps its limits: at most `PEX_PARSED_MAX` entries per
//! list, no port 0.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringseed::wire::ut_metadata::MetadataMessage;
use ringseed::wire::ut_pex::{PexMessage, PEX_PARSED_MAX};

fuzz_target!(|data: &[u8]| {
    if let Ok(pex) = PexMessage::parse(data) {
        assert!(pex.added.len() <= 2 * PEX_PARSED_MAX, "too many added");
        assert!(pex.dropped.len() <= 2 * PEX_PARSED_MAX, "too many dropped");
        assert!(pex.added.iter().all(|(a, _)| a.port() != 0));
        assert!(pex.dropped.iter().all(|a| a.port() != 0));
        let bytes = pex.encode();
        let again = PexMessage::parse(&bytes)
            .unwrap_or_else(|e| panic!("ut_pex re-encoded as {bytes:?} does not parse: {e}"));
        assert_eq!(again, pex, "ut_pex round trip changed the message");
        assert_eq!(again.encode(), bytes, "ut_pex encoding is not stable");
    }
    if let Ok(meta) = MetadataMessage::parse(data) {
        let mut bytes = Vec::new();
        meta.encode(&mut bytes);
        let again = MetadataMessage::parse(&bytes)
            .unwrap_or_else(|e| panic!("ut_metadata re-encoded as {bytes:?} does not parse: {e}"));
        assert_eq!(again, meta, "ut_metadata round trip changed the message");
        let mut twice = Vec::new();
        again.encode(&mut twice);
        assert_eq!(twice, bytes, "ut_metadata encoding is not stable");
    }
});
