//! Fuzz target: KRPC (the DHT's messages). Any bytes given to
//! `dht::krpc::decode` must give a message or a typed error, never a panic; a
//! decoded message is encoded again and must decode to the same message, and
//! that encoding must be stable. The same bytes then go to a `Dht` node as a
//! datagram, and, when they decode as an answer, again with the transaction
//! id of the node's outstanding bootstrap query (so answers reach the lookup
//! code); the node must not panic and its outputs stay bounded.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use ringseed::dht::krpc::{self, Body};
use ringseed::dht::{Dht, DhtConfig, DhtOutput, OUTPUT_QUEUE_MAX};

fuzz_target!(|data: &[u8]| {
    let decoded = krpc::decode(data);
    if let Ok(msg) = &decoded {
        let bytes = msg.encode();
        let again = krpc::decode(&bytes).expect("an encoded message decodes");
        assert_eq!(&again, msg, "round trip changed the message");
        assert_eq!(again.encode(), bytes, "encoding is not stable");
    }

    let peer = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(20, 0, 0, 1), 6881));
    let mut dht = Dht::new(DhtConfig::default(), 1, Duration::ZERO);
    dht.add_node(Duration::ZERO, peer);
    let mut tid = None;
    while let Some(out) = dht.poll_output() {
        if let DhtOutput::Send { bytes, .. } = out {
            tid = krpc::decode(&bytes).ok().map(|m| m.tid);
        }
    }
    dht.handle_datagram(Duration::from_millis(10), peer, data);
    if let (Ok(mut msg), Some(tid)) = (decoded, tid) {
        if !matches!(msg.body, Body::Query(_)) {
            msg.tid = tid;
            dht.handle_datagram(Duration::from_millis(20), peer, &msg.encode());
        }
    }
    dht.tick(Duration::from_secs(10));
    let mut outputs = 0;
    while dht.poll_output().is_some() {
        outputs += 1;
    }
    assert!(outputs <= OUTPUT_QUEUE_MAX);
    let _ = dht.stats();
});
