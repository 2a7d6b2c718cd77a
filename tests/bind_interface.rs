//! `--interface` end to end against the real kernel: a socket bound to "lo"
//! reaches a loopback listener, TCP and UDP sockets bound to a dummy interface
//! cannot reach loopback (traffic does not leave by another interface), and
//! once the interface is deleted, sockets asking for it are refused with
//! `NoSuchInterface` and a socket pinned before still sends nothing.
//!
//! Needs root (to create the dummy interface; `ifb` where the kernel has no
//! `dummy` link type) and iproute2's `ip`. Without
//! them these tests FAIL saying so; they never skip. Traffic stays on loopback
//! or the dummy device.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

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
