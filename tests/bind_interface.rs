//! `--interface` end to end against the real kernel: a socket bound to "lo"
//! reaches a loopback listener, TCP and UDP sockets bound to a dummy interface
//! cannot reach loopback (traffic does not leave by another interface), and
//! once the interface is deleted, sockets asking for it are refused with
//! `NoSuchInterface` and a socket pinned before still sends nothing.
//!
//! The DHT (issue 13): with `--interface`, every DHT datagram leaves through
//! that interface. The dummy interface gets the address 127.0.137.9/32: a
//! socket pinned to it reaches 127.0.137.9 but not 127.0.137.1 (on lo). So
//! ringseed, run with `--interface <dummy>` and two DHT bootstrap nodes, one
//! on each address ([`DhtCapture`]s that record every datagram), must reach
//! the first (its queries come from its listen port) and never the second;
//! with `--interface lo` it does reach the lo node (so that test can fail),
//! and a socket from `runtime::sockets` shows the layout itself.
//!
//! Needs root (to create the dummy interface; `ifb` where the kernel has no
//! `dummy` link type) and iproute2's `ip`. Without
//! them these tests FAIL saying so; they never skip. Traffic stays on loopback
//! or the dummy device.

mod common;

use std::ffi::OsString;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::engine::{free_port, os, untracked_torrent, Daemon, DhtCapture, Untracked};
use ringseed::runtime::sockets::{
    tcp_connect, tcp_listener, tcp_socket_for_connect, udp_socket, BindOptions, SocketError,
};

/// Longest any test waits for one connection or accept.
const WAIT_MAX: Duration = Duration::from_secs(5);
/// Link types tried in order for the throwaway interface.
const LINK_KINDS: [&str; 2] = ["dummy", "ifb"];
/// Connect timeout for the attempt that must not get through.
const BLOCKED_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

fn loopback_any_port() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn on(name: &str) -> BindOptions {
    BindOptions {
        interface: Some(name.to_owned()),
        address: None,
    }
}

/// Fails the test, saying what is missing, unless we run as root with `ip`.
fn require_root_and_ip() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "tests/bind_interface.rs needs root (euid 0, found {euid}) to create a dummy network \
         interface; run it as root (the CI machine does)"
    );
    let ip = Command::new("ip").arg("-V").output();
    assert!(
        matches!(&ip, Ok(out) if out.status.success()),
        "tests/bind_interface.rs needs iproute2's `ip` command on PATH: {ip:?}"
    );
}

fn ip(args: &[&str]) -> Result<(), String> {
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

/// A dummy interface that exists for the guard's lifetime; dropping the guard
/// always deletes it.
struct DummyLink {
    name: String,
    deleted: bool,
}

impl DummyLink {
    fn create(tag: &str) -> DummyLink {
        DummyLink::create_with(tag, None)
    }

    /// A dummy interface that also holds `address` (a /32, local to this
    /// machine and reached only through the interface).
    fn create_with(tag: &str, address: Option<Ipv4Addr>) -> DummyLink {
        let name = format!("rsdum{}{tag}", std::process::id() % 10_000);
        // A leftover from an earlier crashed run with the same pid: remove it.
        let _ = ip(&["link", "del", &name]);
        // `dummy` is the natural type; kernels built without it (some VM
        // kernels) still have `ifb`, which likewise has no addresses, no
        // routes and drops what is sent through it unredirected.
        let mut failures = Vec::new();
        for kind in LINK_KINDS {
            match ip(&["link", "add", &name, "type", kind]) {
                Ok(()) => {
                    failures.clear();
                    break;
                }
                Err(e) => failures.push(e),
            }
        }
        assert!(
            failures.is_empty(),
            "could not create a test interface of any type {LINK_KINDS:?}; this test needs a \
             kernel with the dummy (or ifb) link type: {failures:?}"
        );
        let link = DummyLink {
            name,
            deleted: false,
        };
        if let Some(address) = address {
            let cidr = format!("{address}/32");
            ip(&["addr", "add", &cidr, "dev", &link.name]).unwrap_or_else(|e| panic!("{e}"));
        }
        ip(&["link", "set", &link.name, "up"]).unwrap_or_else(|e| panic!("{e}"));
        link
    }

    fn delete(&mut self) {
        ip(&["link", "del", &self.name]).unwrap_or_else(|e| panic!("{e}"));
        self.deleted = true;
    }
}

impl Drop for DummyLink {
    fn drop(&mut self) {
        if !self.deleted {
            if let Err(e) = ip(&["link", "del", &self.name]) {
                eprintln!("could not delete dummy interface {}: {e}", self.name);
            }
        }
    }
}

/// Waits up to `wait` for one connection on a nonblocking listener.
fn accept_within(listener: &TcpListener, wait: Duration) -> Option<SocketAddr> {
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((_, peer)) => return Some(peer),
            Err(e) if e.kind() == ErrorKind::WouldBlock && start.elapsed() < wait => {
                sleep(Duration::from_millis(10))
            }
            Err(_) => return None,
        }
    }
}

/// Waits up to `wait` for one datagram on a nonblocking socket; its length.
fn recv_within(socket: &UdpSocket, wait: Duration) -> Option<usize> {
    let mut buf = [0u8; 64];
    let start = Instant::now();
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => return Some(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock && start.elapsed() < wait => {
                sleep(Duration::from_millis(10))
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn lo_bound_connect_reaches_lo_bound_listener() {
    require_root_and_ip();
    let lo = on("lo");
    lo.validate().expect("lo exists");
    let listener = tcp_listener(loopback_any_port(), &lo, false, 16).expect("listener on lo");
    let addr = listener.local_addr().expect("listener address");
    let stream = tcp_connect(addr, &lo, Some(WAIT_MAX)).expect("connect bound to lo");
    let peer = accept_within(&listener, WAIT_MAX).expect("listener accepted the connection");
    assert_eq!(Some(peer), stream.local_addr().ok());
}

#[test]
fn dummy_interface_pins_traffic_and_its_removal_is_refused() {
    require_root_and_ip();
    let mut dummy = DummyLink::create("a");
    let pinned = on(&dummy.name);
    pinned.validate().expect("the dummy interface exists");

    // A loopback listener, reachable only through lo.
    let listener = tcp_listener(loopback_any_port(), &on("lo"), false, 16).expect("listener on lo");
    let addr = listener.local_addr().expect("listener address");

    // Bound to the dummy device, 127.0.0.1 is unreachable: the kernel refuses
    // or the SYN goes nowhere and the connect times out. Either way nothing
    // arrives at the listener.
    let start = Instant::now();
    let attempt = tcp_connect(addr, &pinned, Some(BLOCKED_CONNECT_TIMEOUT));
    let took = start.elapsed();
    if let Err(err) = &attempt {
        eprintln!(
            "connect bound to {} blocked after {took:?}: {err}",
            dummy.name
        );
    }
    assert!(
        attempt.is_err(),
        "a connect bound to {} reached {addr}: {attempt:?}",
        dummy.name
    );
    assert!(
        took < BLOCKED_CONNECT_TIMEOUT + Duration::from_secs(3),
        "the blocked connect took {took:?}"
    );
    assert_eq!(
        accept_within(&listener, Duration::from_millis(300)),
        None,
        "the listener accepted a connection that was bound to {}",
        dummy.name
    );

    // UDP the same way: a datagram from a socket pinned to the dummy device
    // never reaches a loopback receiver.
    let receiver = udp_socket(loopback_any_port(), &on("lo")).expect("udp receiver on lo");
    let receiver_addr = receiver.local_addr().expect("receiver address");
    let sender = udp_socket(loopback_any_port(), &pinned).expect("udp socket on the dummy");
    let sent = sender.send_to(b"pinned", receiver_addr);
    eprintln!("udp send bound to {} while it exists: {sent:?}", dummy.name);
    assert_eq!(recv_within(&receiver, Duration::from_millis(300)), None);
    tcp_socket_for_connect(addr, &pinned).expect("connect socket on the dummy interface");

    // Once the interface is gone, everything asking for it is refused.
    let name = dummy.name.clone();
    dummy.delete();
    let no_such = |err: SocketError| match err {
        SocketError::NoSuchInterface { name: found } => assert_eq!(found, name),
        other => panic!("expected NoSuchInterface for {name}, got {other:?}"),
    };
    no_such(pinned.validate().unwrap_err());
    // A socket pinned before the interface vanished does not fall back to
    // another interface: its traffic stops.
    let sent = sender.send_to(b"pinned", receiver_addr);
    eprintln!("udp send bound to the deleted {name}: {sent:?}");
    assert_eq!(recv_within(&receiver, Duration::from_millis(300)), None);
    no_such(tcp_connect(addr, &pinned, Some(BLOCKED_CONNECT_TIMEOUT)).unwrap_err());
    no_such(tcp_socket_for_connect(addr, &pinned).unwrap_err());
    no_such(tcp_listener(loopback_any_port(), &pinned, false, 16).unwrap_err());
    no_such(udp_socket(loopback_any_port(), &pinned).unwrap_err());
    assert_eq!(accept_within(&listener, Duration::from_millis(100)), None);
}

// ---- the DHT (issue 13) ----

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
    let link = DummyLink::create_with("d", Some(LINK_IP));
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
    let link = DummyLink::create_with("e", Some(CONTROL_LINK_IP));
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
