//! Issue 13, "Done when": with `--interface`, every DHT datagram leaves
//! through that interface. The method of tests/bind_interface.rs (a
//! throwaway dummy interface, root needed), extended to ringseed's DHT.
//!
//! The dummy interface gets the address 127.0.137.9/32. A socket pinned to
//! the dummy reaches 127.0.137.9 (a local address of that interface) but not
//! 127.0.137.1 (on lo); a socket pinned to nothing, or to lo, reaches both.
//! So ringseed, run with `--interface <dummy>` and two DHT bootstrap nodes,
//! one on each address ([`DhtCapture`]s that record every datagram), must
//! reach the first (its queries arrive from its listen port) and never the
//! second.
//!
//! - `dht_datagrams_leave_only_through_the_interface`: the ringseed test.
//! - `dht_with_interface_lo_reaches_the_lo_node`: ringseed with `--interface
//!   lo` does reach the lo node, so the first test can fail.
//! - `control_pinned_socket_reaches_only_the_interface_node`: the layout
//!   itself, with a socket from ringseed's `runtime::sockets` in ringseed's
//!   place.
//!
//! Without root or iproute2 these tests FAIL saying so; they never skip.
//! Traffic stays on loopback or the dummy device. Addresses 127.0.137.x.

mod common;

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::engine::*;
use ringseed::runtime::sockets::{udp_socket, BindOptions};

/// Link types tried in order for the throwaway interface.
const LINK_KINDS: [&str; 2] = ["dummy", "ifb"];
/// The dummy interface's own address (a /32, local to this machine); each
/// test its own, as they run at once.
const LINK_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 137, 9);
/// The same for the socket-only control.
const CONTROL_LINK_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 137, 19);
/// A bootstrap node reachable only through lo.
const LO_NODE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 137, 1);
/// Longest until ringseed's first DHT query reaches a node.
const FIRST_QUERY_WAIT_MAX: Duration = Duration::from_secs(45);
/// How long the lo node must stay silent after the link node heard ringseed.
const SILENCE_FOR: Duration = Duration::from_secs(10);

fn require_root_and_ip() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "tests/bind_interface_dht.rs needs root (euid 0, found {euid}) to create a dummy \
         network interface; run it as root (the CI machine does)"
    );
    let ip = Command::new("ip").arg("-V").output();
    assert!(
        matches!(&ip, Ok(out) if out.status.success()),
        "tests/bind_interface_dht.rs needs iproute2's `ip` command on PATH: {ip:?}"
    );
}

fn ip_cmd(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A dummy interface holding one address for the guard's lifetime.
struct DummyLink {
    name: String,
}

impl DummyLink {
    fn create(tag: &str, address: Ipv4Addr) -> DummyLink {
        let name = format!("rsdht{}{tag}", std::process::id() % 10_000);
        // A leftover from an earlier crashed run with the same pid.
        let _ = ip_cmd(&["link", "del", &name]);
        let mut failures = Vec::new();
        for kind in LINK_KINDS {
            match ip_cmd(&["link", "add", &name, "type", kind]) {
                Ok(()) => {
                    failures.clear();
                    break;
                }
                Err(e) => failures.push(e),
            }
        }
        assert!(
            failures.is_empty(),
            "could not create a test interface of any type {LINK_KINDS:?}: {failures:?}"
        );
        let link = DummyLink { name };
        let cidr = format!("{address}/32");
        ip_cmd(&["addr", "add", &cidr, "dev", &link.name]).unwrap_or_else(|e| panic!("{e}"));
        ip_cmd(&["link", "set", &link.name, "up"]).unwrap_or_else(|e| panic!("{e}"));
        link
    }
}

impl Drop for DummyLink {
    fn drop(&mut self) {
        if let Err(e) = ip_cmd(&["link", "del", &self.name]) {
            eprintln!("could not delete dummy interface {}: {e}", self.name);
        }
    }
}

/// `ringseed seed` of a public torrent on `listen`, pinned to `interface`,
/// with both capture nodes as its DHT bootstrap (no `--bind-address`: the
/// interface alone must pin it).
fn seed_pinned(
    t: &Untracked,
    listen: SocketAddr,
    interface: &str,
    nodes: [&DhtCapture; 2],
) -> Daemon {
    let mut args: Vec<OsString> = vec![
        os("seed"),
        os(&t.torrent),
        os("--save-path"),
        os(&t.tree.save_dir),
        os("--listen"),
        os(listen.to_string()),
        os("--interface"),
        os(interface),
    ];
    for n in nodes {
        args.push(os("--dht-bootstrap"));
        args.push(os(n.addr().to_string()));
    }
    let mut d = Daemon::spawn(&format!("ringseed seed --interface {interface}"), &args);
    d.wait_listening("ringseed", listen);
    d
}

#[test]
fn dht_datagrams_leave_only_through_the_interface() {
    require_root_and_ip();
    let link = DummyLink::create("a", LINK_IP);
    let t = untracked_torrent("pinned", 1371, false);
    let on_link = DhtCapture::on(
        UdpSocket::bind((LINK_IP, 0)).unwrap_or_else(|e| panic!("bind {LINK_IP}: {e}")),
    );
    let on_lo = DhtCapture::start(LO_NODE_IP);
    let listen = SocketAddr::from((LINK_IP, free_port(LINK_IP)));
    let mut seed = seed_pinned(&t, listen, &link.name, [&on_link, &on_lo]);
    let context = || {
        format!(
            "link node: {}\nlo node: {}\n{}",
            on_link.describe(),
            on_lo.describe(),
            seed.describe()
        )
    };
    let first = on_link.wait_query(FIRST_QUERY_WAIT_MAX, |q| q.from == listen);
    assert!(
        first.is_some(),
        "no DHT query from {listen} reached the node behind {} within {FIRST_QUERY_WAIT_MAX:?}\n{}",
        link.name,
        context()
    );
    sleep(SILENCE_FOR);
    assert_eq!(
        on_lo.count(),
        0,
        "DHT datagrams left by another interface than {} (they reached {LO_NODE_IP} on lo)\n{}",
        link.name,
        context()
    );
    let strays: Vec<SocketAddr> = on_link
        .datagrams()
        .iter()
        .map(|(from, _)| *from)
        .filter(|from| *from != listen)
        .collect();
    assert!(
        strays.is_empty(),
        "DHT datagrams from another port than the listen port {listen}: {strays:?}\n{}",
        context()
    );
    eprintln!("pinned: {}", context());
    seed.terminate_cleanly();
}

#[test]
fn dht_with_interface_lo_reaches_the_lo_node() {
    require_root_and_ip();
    let t = untracked_torrent("unpinned", 1372, false);
    let other = DhtCapture::start(Ipv4Addr::new(127, 0, 137, 3));
    let on_lo = DhtCapture::start(LO_NODE_IP);
    let ip = Ipv4Addr::new(127, 0, 137, 2);
    let listen = SocketAddr::from((ip, free_port(ip)));
    let mut seed = seed_pinned(&t, listen, "lo", [&other, &on_lo]);
    let started = Instant::now();
    let first = on_lo.wait_query(FIRST_QUERY_WAIT_MAX, |q| q.from == listen);
    assert!(
        first.is_some(),
        "ringseed on lo never queried the lo node {}: the pinned test could not fail\n{}\n{}",
        on_lo.addr(),
        on_lo.describe(),
        seed.describe()
    );
    eprintln!("unpinned: first query after {:?}", started.elapsed());
    seed.terminate_cleanly();
}

#[test]
fn control_pinned_socket_reaches_only_the_interface_node() {
    require_root_and_ip();
    let link = DummyLink::create("c", CONTROL_LINK_IP);
    let on_link = DhtCapture::on(
        UdpSocket::bind((CONTROL_LINK_IP, 0))
            .unwrap_or_else(|e| panic!("bind {CONTROL_LINK_IP}: {e}")),
    );
    let on_lo = DhtCapture::start(LO_NODE_IP);
    let pinned = BindOptions {
        interface: Some(link.name.clone()),
        address: None,
    };
    let sender = udp_socket(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), &pinned)
        .unwrap_or_else(|e| panic!("udp socket on {}: {e:?}", link.name));
    let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
    for node in [&on_link, &on_lo] {
        let sent = sender.send_to(ping, node.addr());
        eprintln!("pinned send to {}: {sent:?}", node.addr());
    }
    let got = on_link.wait_query(Duration::from_secs(5), |q| q.method == "ping");
    assert!(
        got.is_some(),
        "the pinned ping never reached {}",
        on_link.describe()
    );
    sleep(Duration::from_millis(500));
    assert_eq!(
        on_lo.count(),
        0,
        "a pinned datagram reached lo: {}",
        on_lo.describe()
    );
}
