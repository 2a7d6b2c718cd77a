//! Every socket the engine opens, through socket2: TCP listeners, outgoing TCP
//! connections (blocking for the control thread, unconnected for io_uring
//! CONNECT) and UDP sockets, all pinned to the operator's `--interface` and
//! `--bind-address` ([`BindOptions`]).
//!
//! Boundary: this module only creates, configures and binds sockets. It does
//! not read or write payload and knows nothing of BitTorrent.
//!
//! Choices, fixed here so every caller gets the same behaviour:
//! - `--interface NAME` is applied with `SO_BINDTODEVICE` on every socket, so if
//!   the interface goes away traffic stops instead of leaving by another route.
//!   A name the kernel does not know is [`SocketError::NoSuchInterface`].
//! - `--bind-address IP` is the local side of every socket of its family:
//!   listeners on the unspecified address of that family listen on it
//!   instead; outgoing sockets bind it with port 0 (the kernel picks the
//!   port). A socket of the other family (an IPv6 peer or tracker when the
//!   bind address is IPv4) is made only when `--interface` is given too,
//!   bound to that interface alone (traffic still cannot leave elsewhere);
//!   without an interface it is refused with [`SocketError::FamilyMismatch`],
//!   since nothing would then keep that traffic off the other routes.
//!   Listeners of the other family are used as given (they send nothing
//!   unasked).
//! - A listener owns its address: no `SO_REUSEPORT` in the engine, so a
//!   second process asking for an address we hold (or we asking for one
//!   another process holds) gets [`SocketError::AddressInUse`]. The
//!   session's shards share one listening socket per address instead.
//! - Listeners and UDP sockets are returned nonblocking (the event loop drives
//!   them; a caller wanting blocking accept calls `set_nonblocking(false)`).
//!   [`tcp_connect`] returns a blocking stream (control thread);
//!   [`tcp_socket_for_connect`] returns a nonblocking, unconnected socket.
//! - IPv6 sockets always get `IPV6_V6ONLY = 1`: an IPv6 socket never carries
//!   IPv4-mapped traffic, so IPv4 and IPv6 are always separate sockets and a
//!   peer's address family is never ambiguous. The system default
//!   (`net.ipv6.bindv6only`) is not relied on.
//! - Every socket is close-on-exec (socket2 opens them with `SOCK_CLOEXEC`).

use std::ffi::CString;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use thiserror::Error;

/// Longest interface name in bytes, exclusive: the kernel's `IFNAMSIZ` (16)
/// includes the terminating NUL, so a name has at most 15 bytes.
pub const INTERFACE_NAME_BYTES_MAX: usize = 15;

/// Largest listen backlog accepted (the kernel clamps to `somaxconn` anyway).
pub const LISTEN_BACKLOG_MAX: i32 = 65_535;

/// Where the engine's traffic must go: one interface, one local address, both
/// or neither (the default: the kernel's routing decides).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindOptions {
    /// `--interface NAME`: every socket gets `SO_BINDTODEVICE` to it.
    pub interface: Option<String>,
    /// `--bind-address IP`: the local address of every socket.
    pub address: Option<IpAddr>,
}

impl BindOptions {
    /// Checks the interface name's form and that the interface exists now.
    /// Call at startup: ringseed refuses to start on an error.
    pub fn validate(&self) -> Result<(), SocketError> {
        let Some(name) = self.interface.as_deref() else {
            return Ok(());
        };
        check_interface_name(name)?;
        if interface_index(name)?.is_none() {
            return Err(SocketError::NoSuchInterface {
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    fn interface_label(&self) -> InterfaceLabel<'_> {
        InterfaceLabel(self.interface.as_deref())
    }
}

/// The step of socket setup that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketOp {
    Create,
    SetReuseAddress,
    SetReusePort,
    SetOnlyV6,
    SetNonblocking,
    SetNoDelay,
    Bind,
    Listen,
    Connect,
    JoinMulticast,
    SetMulticastInterface,
    SetMulticastTtl,
    SetMulticastLoop,
    SetReadTimeout,
}

impl fmt::Display for SocketOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            SocketOp::Create => "socket creation",
            SocketOp::SetReuseAddress => "setting SO_REUSEADDR",
            SocketOp::SetReusePort => "setting SO_REUSEPORT",
            SocketOp::SetOnlyV6 => "setting IPV6_V6ONLY",
            SocketOp::SetNonblocking => "setting O_NONBLOCK",
            SocketOp::SetNoDelay => "setting TCP_NODELAY",
            SocketOp::Bind => "bind",
            SocketOp::Listen => "listen",
            SocketOp::Connect => "connect",
            SocketOp::JoinMulticast => "joining the multicast group (IP_ADD_MEMBERSHIP)",
            SocketOp::SetMulticastInterface => "setting IP_MULTICAST_IF",
            SocketOp::SetMulticastTtl => "setting IP_MULTICAST_TTL",
            SocketOp::SetMulticastLoop => "setting IP_MULTICAST_LOOP",
            SocketOp::SetReadTimeout => "setting SO_RCVTIMEO",
        };
        f.write_str(s)
    }
}

/// Why a socket could not be made as asked; each carries what was asked and
/// what the OS said.
#[derive(Debug, Error)]
pub enum SocketError {
    #[error("interface name {name:?} is invalid: {reason}")]
    BadInterfaceName { name: String, reason: &'static str },
    #[error(
        "network interface {name:?} does not exist; ringseed will not send traffic \
         through any other interface"
    )]
    NoSuchInterface { name: String },
    #[error(
        "binding a socket for {addr} to interface {name:?} was refused (EPERM): \
         SO_BINDTODEVICE needs CAP_NET_RAW (or root) on kernels before 5.7: {source}"
    )]
    BindDevicePermission {
        name: String,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("binding a socket for {addr} to interface {name:?} failed: {source}")]
    BindDevice {
        name: String,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error(
        "bind address {bind} is {} but {what} {addr} is {}: without --interface nothing \
         would keep that traffic off other routes; give --interface as well (then {} \
         traffic leaves through that interface only) or a bind address of the same family",
        family(.bind),
        family(&.addr.ip()),
        family(&.addr.ip())
    )]
    FamilyMismatch {
        bind: IpAddr,
        what: &'static str,
        addr: SocketAddr,
    },
    #[error(
        "listen address {listen} conflicts with bind address {bind}: listen on the \
         unspecified address or on the bind address itself"
    )]
    ListenAddressConflict { listen: SocketAddr, bind: IpAddr },
    #[error("cannot listen on {addr}: address already in use (another program holds it)")]
    AddressInUse { addr: SocketAddr },
    #[error("listen backlog {found} is outside 1..={LISTEN_BACKLOG_MAX}")]
    BadBacklog { found: i32 },
    #[error("connect timeout to {remote} must be more than zero")]
    ZeroTimeout { remote: SocketAddr },
    #[error("{op} failed for {addr} (interface {interface}): {source}")]
    Os {
        op: SocketOp,
        addr: SocketAddr,
        interface: String,
        source: io::Error,
    },
}

impl SocketError {
    /// The OS error underneath, if any (e.g. to tell a timeout from a refusal).
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            SocketError::BindDevicePermission { source, .. }
            | SocketError::BindDevice { source, .. }
            | SocketError::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn family(ip: &IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

struct InterfaceLabel<'a>(Option<&'a str>);

impl fmt::Display for InterfaceLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, "{name:?}"),
            None => f.write_str("any"),
        }
    }
}

/// The kernel's rules for a device name (`dev_valid_name`): non-empty, at most
/// 15 bytes, not "." or "..", no '/', ':', NUL or whitespace.
fn check_interface_name(name: &str) -> Result<(), SocketError> {
    let bad = |reason| {
        Err(SocketError::BadInterfaceName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > INTERFACE_NAME_BYTES_MAX {
        return bad("it is longer than 15 bytes (IFNAMSIZ is 16 with the NUL)");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not interface names");
    }
    if name.contains('\0') {
        return bad("it contains a NUL byte");
    }
    if name.contains('/') || name.contains(':') {
        return bad("it contains '/' or ':'");
    }
    if name.chars().any(char::is_whitespace) {
        return bad("it contains whitespace");
    }
    Ok(())
}

/// The interface's index, or `None` when the kernel knows no such name.
/// The name must already have passed [`check_interface_name`].
fn interface_index(name: &str) -> Result<Option<u32>, SocketError> {
    let c_name = CString::new(name).map_err(|_| SocketError::BadInterfaceName {
        name: name.to_owned(),
        reason: "it contains a NUL byte",
    })?;
    // SAFETY: `c_name` is a valid NUL-terminated string that outlives the
    // call; if_nametoindex only reads it.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    Ok((index != 0).then_some(index))
}

fn os_error(op: SocketOp, addr: SocketAddr, opts: &BindOptions, source: io::Error) -> SocketError {
    SocketError::Os {
        op,
        addr,
        interface: opts.interface_label().to_string(),
        source,
    }
}

/// A new socket of `addr`'s family, bound to the interface if one is asked,
/// with `IPV6_V6ONLY` set on IPv6.
fn new_socket(
    addr: SocketAddr,
    ty: Type,
    protocol: Protocol,
    opts: &BindOptions,
) -> Result<Socket, SocketError> {
    if let Some(name) = opts.interface.as_deref() {
        check_interface_name(name)?;
    }
    let socket = Socket::new(Domain::for_address(addr), ty, Some(protocol))
        .map_err(|e| os_error(SocketOp::Create, addr, opts, e))?;
    if addr.is_ipv6() {
        socket
            .set_only_v6(true)
            .map_err(|e| os_error(SocketOp::SetOnlyV6, addr, opts, e))?;
    }
    if let Some(name) = opts.interface.as_deref() {
        socket
            .bind_device(Some(name.as_bytes()))
            .map_err(|source| bind_device_error(name, addr, source))?;
    }
    Ok(socket)
}

/// Names what went wrong with `SO_BINDTODEVICE`: ENODEV is a missing
/// interface, EPERM a missing capability.
fn bind_device_error(name: &str, addr: SocketAddr, source: io::Error) -> SocketError {
    match source.raw_os_error() {
        Some(libc::ENODEV) => SocketError::NoSuchInterface {
            name: name.to_owned(),
        },
        Some(libc::EPERM) => SocketError::BindDevicePermission {
            name: name.to_owned(),
            addr,
            source,
        },
        _ => SocketError::BindDevice {
            name: name.to_owned(),
            addr,
            source,
        },
    }
}

/// The address a listener on `local` binds: `local` itself, or the bind
/// address with `local`'s port when `local` is the unspecified address of
/// the bind address's family. A listen address of the other family is used
/// as given.
pub fn listen_address(local: SocketAddr, opts: &BindOptions) -> Result<SocketAddr, SocketError> {
    let Some(bind) = opts.address else {
        return Ok(local);
    };
    if bind.is_ipv4() != local.is_ipv4() {
        return Ok(local);
    }
    if local.ip().is_unspecified() {
        Ok(SocketAddr::new(bind, local.port()))
    } else if local.ip() == bind {
        Ok(local)
    } else {
        Err(SocketError::ListenAddressConflict {
            listen: local,
            bind,
        })
    }
}

fn bind(socket: &Socket, local: SocketAddr, opts: &BindOptions) -> Result<(), SocketError> {
    socket
        .bind(&SockAddr::from(local))
        .map_err(|e| os_error(SocketOp::Bind, local, opts, e))
}

/// A nonblocking TCP listener on `addr` (see [`listen_address`]), with
/// `SO_REUSEADDR` (a restart may bind while old connections linger in
/// TIME_WAIT; Linux still refuses a second *listener*), and `SO_REUSEPORT`
/// when `reuse_port` (for the load generator's synthetic seeds only: it lets
/// any process of the same user join the port, so the engine never sets
/// it). An address another socket listens on is
/// [`SocketError::AddressInUse`]. `TCP_NODELAY` is set on it, and
/// Linux passes it on to every accepted connection (see [`set_no_delay`]).
pub fn tcp_listener(
    addr: SocketAddr,
    opts: &BindOptions,
    reuse_port: bool,
    backlog: i32,
) -> Result<TcpListener, SocketError> {
    if !(1..=LISTEN_BACKLOG_MAX).contains(&backlog) {
        return Err(SocketError::BadBacklog { found: backlog });
    }
    let local = listen_address(addr, opts)?;
    let socket = new_socket(local, Type::STREAM, Protocol::TCP, opts)?;
    socket
        .set_reuse_address(true)
        .map_err(|e| os_error(SocketOp::SetReuseAddress, local, opts, e))?;
    if reuse_port {
        socket
            .set_reuse_port(true)
            .map_err(|e| os_error(SocketOp::SetReusePort, local, opts, e))?;
    }
    socket
        .set_nonblocking(true)
        .map_err(|e| os_error(SocketOp::SetNonblocking, local, opts, e))?;
    set_no_delay(&socket, local, opts)?;
    socket.bind(&SockAddr::from(local)).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            SocketError::AddressInUse { addr: local }
        } else {
            os_error(SocketOp::Bind, local, opts, e)
        }
    })?;
    socket
        .listen(backlog)
        .map_err(|e| os_error(SocketOp::Listen, local, opts, e))?;
    Ok(socket.into())
}

/// An unconnected TCP socket for `remote`'s family, bound to the interface and
/// to the bind address (port 0) as asked, nonblocking, with `TCP_NODELAY`
/// (see [`set_no_delay`]): for io_uring CONNECT.
pub fn tcp_socket_for_connect(
    remote: SocketAddr,
    opts: &BindOptions,
) -> Result<Socket, SocketError> {
    let socket = outgoing_socket(remote, Type::STREAM, Protocol::TCP, opts)?;
    socket
        .set_nonblocking(true)
        .map_err(|e| os_error(SocketOp::SetNonblocking, remote, opts, e))?;
    set_no_delay(&socket, remote, opts)?;
    Ok(socket)
}

/// Turns Nagle's algorithm off. Peer connections write whole messages (a
/// request, or a block with its header, in one vectored send), so there is
/// nothing for Nagle to merge; it would only hold a message's last partial
/// segment until the previous data is acknowledged, adding a round trip to
/// small messages (requests, haves) and to the tail of each send.
fn set_no_delay(socket: &Socket, addr: SocketAddr, opts: &BindOptions) -> Result<(), SocketError> {
    socket
        .set_tcp_nodelay(true)
        .map_err(|e| os_error(SocketOp::SetNoDelay, addr, opts, e))
}

/// A blocking TCP connection to `remote`, bound as asked. `timeout` bounds the
/// connect; `None` leaves it to the kernel's SYN retries (minutes).
pub fn tcp_connect(
    remote: SocketAddr,
    opts: &BindOptions,
    timeout: Option<Duration>,
) -> Result<TcpStream, SocketError> {
    if timeout == Some(Duration::ZERO) {
        return Err(SocketError::ZeroTimeout { remote });
    }
    let socket = outgoing_socket(remote, Type::STREAM, Protocol::TCP, opts)?;
    let target = SockAddr::from(remote);
    match timeout {
        Some(t) => socket.connect_timeout(&target, t),
        None => socket.connect(&target),
    }
    .map_err(|e| os_error(SocketOp::Connect, remote, opts, e))?;
    Ok(socket.into())
}

/// A nonblocking UDP socket on `local` (or on the bind address with `local`'s
/// port when `local` is unspecified), bound to the interface as asked. It
/// sends, so a `local` of the bind address's other family follows the rule
/// of outgoing sockets (see [`other_family_allowed`]).
pub fn udp_socket(local: SocketAddr, opts: &BindOptions) -> Result<UdpSocket, SocketError> {
    if let Some(bind_ip) = opts.address {
        if bind_ip.is_ipv4() != local.is_ipv4() {
            other_family_allowed(bind_ip, "the local address", local, opts)?;
        }
    }
    let local = listen_address(local, opts)?;
    let socket = new_socket(local, Type::DGRAM, Protocol::UDP, opts)?;
    socket
        .set_nonblocking(true)
        .map_err(|e| os_error(SocketOp::SetNonblocking, local, opts, e))?;
    bind(&socket, local, opts)?;
    Ok(socket.into())
}

/// A blocking IPv4 UDP socket that is a member of the multicast `group`
/// (local service discovery): bound to the group's address and port with
/// `SO_REUSEADDR` (other clients on the host join the same group), to the
/// interface when one is asked, joined on the bind address (or the
/// interface, or the default route), sending with `ttl` hops at most and
/// looping back to this host, reads waiting at most `read_timeout`. A
/// bind address of the other family without an interface is
/// [`SocketError::FamilyMismatch`].
pub fn multicast_udp_socket(
    group: std::net::SocketAddrV4,
    ttl: u32,
    read_timeout: std::time::Duration,
    opts: &BindOptions,
) -> Result<UdpSocket, SocketError> {
    use socket2::InterfaceIndexOrAddress;
    let addr = SocketAddr::V4(group);
    let local_v4 = match opts.address {
        Some(IpAddr::V4(a)) => Some(a),
        Some(bind @ IpAddr::V6(_)) => {
            other_family_allowed(bind, "the multicast group", addr, opts)?;
            None
        }
        None => None,
    };
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP, opts)?;
    socket
        .set_reuse_address(true)
        .map_err(|e| os_error(SocketOp::SetReuseAddress, addr, opts, e))?;
    bind(&socket, addr, opts)?;
    let index = match opts.interface.as_deref() {
        Some(name) => interface_index(name)?,
        None => None,
    };
    let on = match (local_v4, index) {
        (Some(a), _) => InterfaceIndexOrAddress::Address(a),
        (None, Some(i)) => InterfaceIndexOrAddress::Index(i),
        (None, None) => InterfaceIndexOrAddress::Address(std::net::Ipv4Addr::UNSPECIFIED),
    };
    socket
        .join_multicast_v4_n(group.ip(), &on)
        .map_err(|e| os_error(SocketOp::JoinMulticast, addr, opts, e))?;
    if let Some(a) = local_v4 {
        socket
            .set_multicast_if_v4(&a)
            .map_err(|e| os_error(SocketOp::SetMulticastInterface, addr, opts, e))?;
    }
    socket
        .set_multicast_ttl_v4(ttl)
        .map_err(|e| os_error(SocketOp::SetMulticastTtl, addr, opts, e))?;
    socket
        .set_multicast_loop_v4(true)
        .map_err(|e| os_error(SocketOp::SetMulticastLoop, addr, opts, e))?;
    socket
        .set_read_timeout(Some(read_timeout))
        .map_err(|e| os_error(SocketOp::SetReadTimeout, addr, opts, e))?;
    Ok(socket.into())
}

/// A socket for talking to `remote`: interface applied, and bound to the bind
/// address with port 0 when one is set.
fn outgoing_socket(
    remote: SocketAddr,
    ty: Type,
    protocol: Protocol,
    opts: &BindOptions,
) -> Result<Socket, SocketError> {
    let bind_ip = match opts.address {
        Some(ip) if ip.is_ipv4() != remote.is_ipv4() => {
            other_family_allowed(ip, "the remote", remote, opts)?;
            None
        }
        other => other,
    };
    let socket = new_socket(remote, ty, protocol, opts)?;
    if let Some(bind_ip) = bind_ip {
        bind(&socket, SocketAddr::new(bind_ip, 0), opts)?;
    }
    Ok(socket)
}

/// Whether a socket sending to or from `addr`, of the other family than the
/// bind address, may be made: only when an interface pins it (it is then
/// bound to the interface and not to an address). Without one, nothing would
/// keep its traffic off other routes: [`SocketError::FamilyMismatch`].
fn other_family_allowed(
    bind: IpAddr,
    what: &'static str,
    addr: SocketAddr,
    opts: &BindOptions,
) -> Result<(), SocketError> {
    if opts.interface.is_some() {
        Ok(())
    } else {
        Err(SocketError::FamilyMismatch { bind, what, addr })
    }
}

/// Most addresses [`own_addresses`] returns (a machine with more interface
/// addresses than this is not protected against dialling itself past them;
/// the engine checks each candidate against the list, so it stays short).
pub const OWN_ADDRESSES_MAX: usize = 256;

/// The addresses peers (and trackers) may name us by: each listening
/// address as it is, and for an unspecified one (`0.0.0.0:P`, `[::]:P`)
/// every address of its family on this machine's interfaces (only the
/// interface's with `--interface`) with port P. At most
/// [`OWN_ADDRESSES_MAX`]; without the interface list (getifaddrs failed)
/// just the listening addresses.
pub fn own_addresses(listening: &[SocketAddr], opts: &BindOptions) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    let push = |out: &mut Vec<SocketAddr>, a: SocketAddr| {
        if out.len() < OWN_ADDRESSES_MAX && !out.contains(&a) {
            out.push(a);
        }
    };
    let local_ips = if listening.iter().any(|a| a.ip().is_unspecified()) {
        interface_addresses(opts.interface.as_deref())
    } else {
        Vec::new()
    };
    for &addr in listening {
        push(&mut out, addr);
        if addr.ip().is_unspecified() {
            for ip in local_ips.iter().filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
                push(&mut out, SocketAddr::new(*ip, addr.port()));
            }
        }
    }
    out
}

/// The IPv4 and IPv6 addresses of this machine's interfaces (of `only`
/// when given), from getifaddrs; empty when it fails.
fn interface_addresses(only: Option<&str>) -> Vec<IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = list;
    while !cur.is_null() && out.len() < OWN_ADDRESSES_MAX {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet
        // freed; its fields are valid for reading.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        if let Some(name) = only {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let this = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
            if this.to_bytes() != name.as_bytes() {
                continue;
            }
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr whose family
        // says which struct it is; we read only that struct.
        let ip = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    Some(IpAddr::from(
                        u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                    ))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                }
                _ => None,
            }
        };
        if let Some(ip) = ip {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::thread::sleep;
    use std::time::Instant;

    const WAIT_MAX: Duration = Duration::from_secs(5);

    fn lo_v4(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    fn with_interface(name: &str) -> BindOptions {
        BindOptions {
            interface: Some(name.to_owned()),
            address: None,
        }
    }

    /// Accepts one connection from a nonblocking listener, waiting at most
    /// `WAIT_MAX`.
    fn accept_one(listener: &TcpListener) -> Option<SocketAddr> {
        let start = Instant::now();
        while start.elapsed() < WAIT_MAX {
            match listener.accept() {
                Ok((_, peer)) => return Some(peer),
                Err(e) if e.kind() == ErrorKind::WouldBlock => sleep(Duration::from_millis(5)),
                Err(_) => return None,
            }
        }
        None
    }

    fn listen_and_connect(opts: &BindOptions) {
        let listener = tcp_listener(lo_v4(0), opts, false, 16).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        let stream = tcp_connect(addr, opts, Some(Duration::from_secs(2))).unwrap();
        let peer = accept_one(&listener).expect("listener accepted the connection");
        assert_eq!(peer, stream.local_addr().unwrap());
    }

    #[test]
    fn default_options_validate() {
        assert!(BindOptions::default().validate().is_ok());
        assert!(with_interface("lo").validate().is_ok());
    }

    #[test]
    fn listener_and_connect_without_interface() {
        listen_and_connect(&BindOptions::default());
    }

    #[test]
    fn listener_and_connect_on_lo() {
        listen_and_connect(&with_interface("lo"));
    }

    #[test]
    fn listener_and_connect_with_bind_address() {
        let opts = BindOptions {
            interface: Some("lo".to_owned()),
            address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        };
        // Unspecified listen address becomes the bind address.
        let listener = tcp_listener(SocketAddr::from(([0, 0, 0, 0], 0)), &opts, false, 16).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        let stream = tcp_connect(addr, &opts, Some(Duration::from_secs(2))).unwrap();
        assert_eq!(
            stream.local_addr().unwrap().ip(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert!(accept_one(&listener).is_some());
    }

    #[test]
    fn accepted_and_outgoing_peer_sockets_have_nagle_off() {
        let opts = BindOptions::default();
        let listener = tcp_listener(lo_v4(0), &opts, false, 16).unwrap();
        assert!(Socket::from(listener.try_clone().unwrap())
            .tcp_nodelay()
            .unwrap());
        let addr = listener.local_addr().unwrap();
        let outgoing = tcp_socket_for_connect(addr, &opts).unwrap();
        assert!(outgoing.tcp_nodelay().unwrap());
        // A plain blocking client, Nagle on: only the accepted side is ours.
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let start = Instant::now();
        let accepted = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == ErrorKind::WouldBlock && start.elapsed() < WAIT_MAX => {
                    sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY is inherited");
    }

    #[test]
    fn listener_is_nonblocking() {
        let listener = tcp_listener(lo_v4(0), &BindOptions::default(), false, 16).unwrap();
        let err = listener.accept().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
    }

    #[test]
    fn reuse_port_lets_two_listeners_share_a_port() {
        let opts = with_interface("lo");
        let first = tcp_listener(lo_v4(0), &opts, true, 16).unwrap();
        let port = first.local_addr().unwrap().port();
        let second = tcp_listener(lo_v4(port), &opts, true, 16).unwrap();
        assert_eq!(second.local_addr().unwrap().port(), port);
    }

    #[test]
    fn without_reuse_port_the_second_listener_is_refused() {
        let opts = BindOptions::default();
        let first = tcp_listener(lo_v4(0), &opts, false, 16).unwrap();
        let port = first.local_addr().unwrap().port();
        let err = tcp_listener(lo_v4(port), &opts, false, 16).unwrap_err();
        assert!(
            matches!(err, SocketError::AddressInUse { addr } if addr == lo_v4(port)),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "cannot listen on 127.0.0.1:{port}: address already in use \
                 (another program holds it)"
            )
        );
        // The unspecified address overlaps it too.
        let any = SocketAddr::from(([0, 0, 0, 0], port));
        let err = tcp_listener(any, &opts, false, 16).unwrap_err();
        assert!(matches!(err, SocketError::AddressInUse { .. }), "{err:?}");
    }

    #[test]
    fn a_port_another_program_shares_with_reuse_port_is_refused_to_us() {
        // Another program that set SO_REUSEPORT would let any process of
        // the same user join; we never set it, so we are refused.
        let other = tcp_listener(lo_v4(0), &BindOptions::default(), true, 16).unwrap();
        let port = other.local_addr().unwrap().port();
        let err = tcp_listener(lo_v4(port), &BindOptions::default(), false, 16).unwrap_err();
        assert!(matches!(err, SocketError::AddressInUse { .. }), "{err:?}");
        // And the other way round: ours held, theirs with SO_REUSEPORT refused.
        let ours = tcp_listener(lo_v4(0), &BindOptions::default(), false, 16).unwrap();
        let port = ours.local_addr().unwrap().port();
        let err = tcp_listener(lo_v4(port), &BindOptions::default(), true, 16).unwrap_err();
        assert!(matches!(err, SocketError::AddressInUse { .. }), "{err:?}");
    }

    #[test]
    fn ipv4_and_ipv6_listeners_share_a_port() {
        let opts = BindOptions::default();
        let v4 = tcp_listener(SocketAddr::from(([0, 0, 0, 0], 0)), &opts, false, 16).unwrap();
        let port = v4.local_addr().unwrap().port();
        let v6 = tcp_listener(
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            &opts,
            false,
            16,
        )
        .unwrap();
        assert_eq!(v6.local_addr().unwrap().port(), port);
        let to_v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port);
        let stream = tcp_connect(to_v6, &opts, Some(Duration::from_secs(2))).unwrap();
        assert_eq!(accept_one(&v6), Some(stream.local_addr().unwrap()));
        let stream = tcp_connect(lo_v4(port), &opts, Some(Duration::from_secs(2))).unwrap();
        assert_eq!(accept_one(&v4), Some(stream.local_addr().unwrap()));
    }

    #[test]
    fn bad_backlog_is_refused() {
        for backlog in [0, -1, LISTEN_BACKLOG_MAX + 1] {
            let err = tcp_listener(lo_v4(0), &BindOptions::default(), false, backlog).unwrap_err();
            assert!(matches!(err, SocketError::BadBacklog { found } if found == backlog));
        }
    }

    fn assert_no_such(err: SocketError, name: &str) {
        match &err {
            SocketError::NoSuchInterface { name: found } => assert_eq!(found, name),
            other => panic!("expected NoSuchInterface, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("does not exist"), "{msg}");
        assert!(msg.contains("will not send traffic"), "{msg}");
    }

    #[test]
    fn missing_interface_is_refused_everywhere() {
        let opts = with_interface("rsnope0");
        assert_no_such(opts.validate().unwrap_err(), "rsnope0");
        assert_no_such(
            tcp_listener(lo_v4(0), &opts, false, 16).unwrap_err(),
            "rsnope0",
        );
        assert_no_such(
            tcp_connect(lo_v4(9), &opts, Some(Duration::from_secs(1))).unwrap_err(),
            "rsnope0",
        );
        assert_no_such(
            tcp_socket_for_connect(lo_v4(9), &opts).unwrap_err(),
            "rsnope0",
        );
        assert_no_such(udp_socket(lo_v4(0), &opts).unwrap_err(), "rsnope0");
    }

    #[test]
    fn bad_interface_names_are_refused() {
        let long = "a".repeat(INTERFACE_NAME_BYTES_MAX + 1);
        for name in [
            "",
            ".",
            "..",
            "a/b",
            "a:1",
            "a b",
            "a\tb",
            "a\0b",
            long.as_str(),
        ] {
            let opts = with_interface(name);
            let err = opts.validate().unwrap_err();
            assert!(
                matches!(&err, SocketError::BadInterfaceName { name: n, .. } if n == name),
                "{name:?}: {err:?}"
            );
            let err = udp_socket(lo_v4(0), &opts).unwrap_err();
            assert!(
                matches!(err, SocketError::BadInterfaceName { .. }),
                "{name:?}"
            );
        }
        // 15 bytes is the longest allowed form; it just does not exist here.
        let longest = "b".repeat(INTERFACE_NAME_BYTES_MAX);
        assert_no_such(with_interface(&longest).validate().unwrap_err(), &longest);
    }

    #[test]
    fn address_family_mismatch_is_refused_without_an_interface() {
        let v6 = BindOptions {
            interface: None,
            address: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        };
        for err in [
            tcp_connect(lo_v4(9), &v6, Some(Duration::from_secs(1))).unwrap_err(),
            tcp_socket_for_connect(lo_v4(9), &v6).unwrap_err(),
            udp_socket(lo_v4(0), &v6).unwrap_err(),
        ] {
            assert!(matches!(err, SocketError::FamilyMismatch { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains("IPv6") && msg.contains("IPv4"), "{msg}");
            assert!(msg.contains("--interface"), "{msg}");
        }
        // A listener of the other family sends nothing unasked: as given.
        let l = tcp_listener(lo_v4(0), &v6, false, 16).unwrap();
        assert_eq!(
            l.local_addr().unwrap().ip(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
    }

    #[test]
    fn other_family_with_an_interface_is_bound_to_the_interface_only() {
        // --interface lo --bind-address 127.0.0.1: an IPv6 peer is dialled
        // through lo, from no particular address.
        let opts = BindOptions {
            interface: Some("lo".to_owned()),
            address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        };
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0);
        let listener = tcp_listener(v6, &opts, false, 16).unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let socket = tcp_socket_for_connect(addr, &opts).unwrap();
        assert_eq!(socket.device().unwrap().as_deref(), Some(&b"lo"[..]));
        let stream = tcp_connect(addr, &opts, Some(Duration::from_secs(2))).unwrap();
        assert!(stream.local_addr().unwrap().is_ipv6());
        assert!(accept_one(&listener).is_some());
        let udp = udp_socket(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0), &opts);
        assert!(udp.unwrap().local_addr().unwrap().is_ipv6());
    }

    #[test]
    fn own_addresses_expand_the_unspecified_address() {
        let opts = BindOptions::default();
        let listening = [
            SocketAddr::from(([0, 0, 0, 0], 7001)),
            SocketAddr::from(([127, 0, 0, 2], 7002)),
        ];
        let own = own_addresses(&listening, &opts);
        assert_eq!(own.first(), Some(&listening[0]));
        assert!(own.contains(&listening[1]));
        // lo's 127.0.0.1 is one of the machine's addresses.
        assert!(own.contains(&lo_v4(7001)), "{own:?}");
        assert!(!own.contains(&lo_v4(7002)), "{own:?}");
        assert!(own.iter().all(|a| a.is_ipv4()), "{own:?}");
        // Only the named interface's addresses.
        let v6_any = [SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 7003)];
        let own = own_addresses(&v6_any, &with_interface("lo"));
        assert!(
            own.contains(&SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 7003)),
            "{own:?}"
        );
        assert!(
            own.iter().all(|a| a.is_ipv6() && a.port() == 7003),
            "{own:?}"
        );
        assert!(own.len() <= OWN_ADDRESSES_MAX);
    }

    #[test]
    fn listen_address_conflicting_with_bind_address_is_refused() {
        let opts = BindOptions {
            interface: None,
            address: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))),
        };
        let err = tcp_listener(lo_v4(0), &opts, false, 16).unwrap_err();
        assert!(
            matches!(err, SocketError::ListenAddressConflict { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn bind_device_errors_are_named() {
        let addr = lo_v4(6881);
        let err = bind_device_error("wg0", addr, io::Error::from_raw_os_error(libc::ENODEV));
        assert_no_such(err, "wg0");
        let err = bind_device_error("wg0", addr, io::Error::from_raw_os_error(libc::EPERM));
        assert!(matches!(err, SocketError::BindDevicePermission { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("CAP_NET_RAW") && msg.contains("\"wg0\""),
            "{msg}"
        );
        let err = bind_device_error("wg0", addr, io::Error::from_raw_os_error(libc::EINVAL));
        assert!(matches!(err, SocketError::BindDevice { .. }));
        assert_eq!(
            err.io_error().and_then(io::Error::raw_os_error),
            Some(libc::EINVAL)
        );
        assert!(err.to_string().contains("127.0.0.1:6881"));
    }

    #[test]
    fn zero_timeout_is_refused() {
        let err = tcp_connect(lo_v4(9), &BindOptions::default(), Some(Duration::ZERO)).unwrap_err();
        assert!(matches!(err, SocketError::ZeroTimeout { .. }));
    }

    #[test]
    fn connect_socket_is_bound_to_the_bind_address() {
        let opts = BindOptions {
            interface: Some("lo".to_owned()),
            address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        };
        let socket = tcp_socket_for_connect(lo_v4(9), &opts).unwrap();
        let local = socket.local_addr().unwrap().as_socket().unwrap();
        assert_eq!(local.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_ne!(local.port(), 0);
        assert!(socket.nonblocking().unwrap());
        assert_eq!(socket.device().unwrap().as_deref(), Some(&b"lo"[..]));
    }

    #[test]
    fn udp_socket_on_lo_carries_a_datagram() {
        let opts = with_interface("lo");
        let a = udp_socket(lo_v4(0), &opts).unwrap();
        let b = udp_socket(lo_v4(0), &opts).unwrap();
        a.send_to(b"ping", b.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 8];
        let start = Instant::now();
        let got = loop {
            match b.recv_from(&mut buf) {
                Ok((n, from)) => break Some((n, from)),
                Err(e) if e.kind() == ErrorKind::WouldBlock && start.elapsed() < WAIT_MAX => {
                    sleep(Duration::from_millis(5))
                }
                Err(_) => break None,
            }
        };
        let (n, from) = got.expect("datagram arrived");
        assert_eq!(buf.get(..n), Some(&b"ping"[..]));
        assert_eq!(from, a.local_addr().unwrap());
    }

    #[test]
    fn ipv6_sockets_are_v6_only() {
        let opts = BindOptions::default();
        let local = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0);
        let socket = new_socket(local, Type::STREAM, Protocol::TCP, &opts).unwrap();
        assert!(socket.only_v6().unwrap());
    }

    #[test]
    fn os_errors_name_the_operation_address_and_interface() {
        let opts = with_interface("lo");
        let err = tcp_connect(lo_v4(1), &opts, Some(Duration::from_secs(2))).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("connect failed"), "{msg}");
        assert!(msg.contains("127.0.0.1:1"), "{msg}");
        assert!(msg.contains("\"lo\""), "{msg}");
        assert!(err.io_error().is_some());
    }
}
