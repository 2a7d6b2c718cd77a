//! KRPC, the DHT's message format (BEP 5): bencoded dictionaries carried one
//! per UDP datagram. This module turns bytes into a [`Message`] and back.
//!
//! Boundary: codec only; what a message means to the node is `Dht`'s job.
//!
//! Rules, decided on purpose:
//! - a datagram over [`DATAGRAM_LEN_MAX`] bytes, or one that is not a single
//!   bencoded dictionary, is refused; every malformed field is a typed error
//!   naming the key;
//! - transaction ids are 1 to [`TID_LEN_MAX`] bytes; tokens at most
//!   [`TOKEN_LEN_MAX`] bytes;
//! - `nodes` must be a multiple of 26 bytes (compact IPv4 node info);
//!   `values` entries of 6 bytes are IPv4 peers, 18-byte (IPv6) entries are
//!   skipped, other lengths are an error; `nodes6` is ignored (no BEP 32);
//! - an unknown query method decodes as [`Query::Unknown`] so the node can
//!   answer error 204; unknown keys are ignored;
//! - `ro` (BEP 43) is read from the top level; `ip` (BEP 42) is a 6-byte
//!   compact address, other lengths (IPv6's 18) are ignored.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::node_id::{NodeId, NODE_ID_LEN};
use crate::bencode::{self, Dict, OwnedValue, Value, ValueKind};
use crate::InfoHash;

/// Largest datagram read as KRPC, in bytes (more than any sane message).
pub const DATAGRAM_LEN_MAX: usize = 2048;
/// Longest transaction id accepted, in bytes.
pub const TID_LEN_MAX: usize = 16;
/// Longest token accepted, in bytes.
pub const TOKEN_LEN_MAX: usize = 64;
/// Length of one compact IPv4 node entry: id, address, port.
pub const COMPACT_NODE_LEN: usize = NODE_ID_LEN + 6;
/// Most `values` entries decoded from one response (more are ignored).
pub const VALUES_DECODED_MAX: usize = 256;
/// Most `nodes` entries decoded from one response (more are ignored).
pub const NODES_DECODED_MAX: usize = 64;
/// Longest error message kept, in bytes.
pub const ERROR_MESSAGE_LEN_MAX: usize = 256;

const _: () = assert!(NODES_DECODED_MAX * COMPACT_NODE_LEN > DATAGRAM_LEN_MAX / 2);

/// Error codes (BEP 5).
pub const ERROR_GENERIC: i64 = 201;
pub const ERROR_SERVER: i64 = 202;
pub const ERROR_PROTOCOL: i64 = 203;
pub const ERROR_METHOD_UNKNOWN: i64 = 204;

/// One KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Transaction id, echoed in the answer.
    pub tid: Vec<u8>,
    pub body: Body,
    /// BEP 43 `ro=1`: the sender answers no queries.
    pub read_only: bool,
    /// BEP 42 `ip`: the address the sender saw us at (in answers).
    pub ip: Option<SocketAddrV4>,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Query(Query),
    Response(Response),
    Error { code: i64, message: Vec<u8> },
}

/// A query and its arguments. `id` is the sender's node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Ping {
        id: NodeId,
    },
    FindNode {
        id: NodeId,
        target: NodeId,
    },
    GetPeers {
        id: NodeId,
        info_hash: InfoHash,
    },
    AnnouncePeer {
        id: NodeId,
        info_hash: InfoHash,
        port: u16,
        implied_port: bool,
        token: Vec<u8>,
    },
    /// A method this node does not know (answered with error 204).
    Unknown {
        id: NodeId,
        method: Vec<u8>,
    },
}

impl Query {
    /// The querying node's id.
    pub fn sender_id(&self) -> NodeId {
        match self {
            Query::Ping { id }
            | Query::FindNode { id, .. }
            | Query::GetPeers { id, .. }
            | Query::AnnouncePeer { id, .. }
            | Query::Unknown { id, .. } => *id,
        }
    }
}

/// A response's fields; which are present depends on the query it answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub id: NodeId,
    /// Compact IPv4 nodes (`nodes`).
    pub nodes: Vec<(NodeId, SocketAddrV4)>,
    /// Compact IPv4 peers (`values`).
    pub values: Vec<SocketAddrV4>,
    pub token: Option<Vec<u8>>,
}

/// Why a datagram is not a KRPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KrpcError {
    #[error("datagram of {len} bytes, over the limit of {DATAGRAM_LEN_MAX}")]
    TooLong { len: usize },
    #[error("not bencode: {0}")]
    Bencode(#[from] bencode::DecodeError),
    #[error("the message is a {found}, expected a dictionary")]
    NotADict { found: &'static str },
    #[error("key {key:?} is missing")]
    Missing { key: &'static str },
    #[error("key {key:?} is a {found}, expected {expected}")]
    WrongType {
        key: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("key {key:?} has {len} bytes, expected {expected}")]
    BadLength {
        key: &'static str,
        len: usize,
        expected: &'static str,
    },
    #[error("message type {0:?} is not q, r or e")]
    UnknownType(Vec<u8>),
    #[error("port {0} is out of range 0..=65535")]
    BadPort(i64),
}

fn kind_name(v: &Value<'_>) -> &'static str {
    v.type_name()
}

fn get<'d, 'a>(d: &'d Dict<'a>, key: &'static str) -> Result<&'d Value<'a>, KrpcError> {
    d.get(key.as_bytes()).ok_or(KrpcError::Missing { key })
}

fn bytes_of<'a>(v: &Value<'a>, key: &'static str) -> Result<&'a [u8], KrpcError> {
    v.as_bytes().ok_or(KrpcError::WrongType {
        key,
        expected: "a string",
        found: kind_name(v),
    })
}

fn dict_of<'d, 'a>(v: &'d Value<'a>, key: &'static str) -> Result<&'d Dict<'a>, KrpcError> {
    v.as_dict().ok_or(KrpcError::WrongType {
        key,
        expected: "a dictionary",
        found: kind_name(v),
    })
}

fn int_of(v: &Value<'_>, key: &'static str) -> Result<i64, KrpcError> {
    v.as_int().ok_or(KrpcError::WrongType {
        key,
        expected: "an integer",
        found: kind_name(v),
    })
}

fn id_of(d: &Dict<'_>, key: &'static str) -> Result<NodeId, KrpcError> {
    let b = bytes_of(get(d, key)?, key)?;
    NodeId::from_slice(b).ok_or(KrpcError::BadLength {
        key,
        len: b.len(),
        expected: "20",
    })
}

fn compact_addr(b: &[u8]) -> Option<SocketAddrV4> {
    let [a, b2, c, d, p0, p1] = <[u8; 6]>::try_from(b).ok()?;
    Some(SocketAddrV4::new(
        Ipv4Addr::new(a, b2, c, d),
        u16::from_be_bytes([p0, p1]),
    ))
}

/// Writes `addr` as 6 compact bytes.
pub fn compact_addr_bytes(addr: SocketAddrV4) -> [u8; 6] {
    let [a, b, c, d] = addr.ip().octets();
    let [p0, p1] = addr.port().to_be_bytes();
    [a, b, c, d, p0, p1]
}

/// Decodes compact node info (26 bytes per node), keeping at most
/// [`NODES_DECODED_MAX`].
pub fn decode_compact_nodes(b: &[u8]) -> Result<Vec<(NodeId, SocketAddrV4)>, KrpcError> {
    if b.len() % COMPACT_NODE_LEN != 0 {
        return Err(KrpcError::BadLength {
            key: "nodes",
            len: b.len(),
            expected: "a multiple of 26",
        });
    }
    let mut out = Vec::new();
    for chunk in b.chunks_exact(COMPACT_NODE_LEN).take(NODES_DECODED_MAX) {
        let (id, addr) = chunk.split_at(NODE_ID_LEN);
        if let (Some(id), Some(addr)) = (NodeId::from_slice(id), compact_addr(addr)) {
            out.push((id, addr));
        }
    }
    Ok(out)
}

/// Encodes nodes as compact node info.
pub fn encode_compact_nodes(nodes: &[(NodeId, SocketAddrV4)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nodes.len() * COMPACT_NODE_LEN);
    for (id, addr) in nodes {
        out.extend_from_slice(&id.0);
        out.extend_from_slice(&compact_addr_bytes(*addr));
    }
    out
}

/// Decodes one datagram.
pub fn decode(bytes: &[u8]) -> Result<Message, KrpcError> {
    if bytes.len() > DATAGRAM_LEN_MAX {
        return Err(KrpcError::TooLong { len: bytes.len() });
    }
    let root = bencode::decode(bytes)?;
    let d = root.as_dict().ok_or(KrpcError::NotADict {
        found: kind_name(&root),
    })?;
    let tid = bytes_of(get(d, "t")?, "t")?;
    if tid.is_empty() || tid.len() > TID_LEN_MAX {
        return Err(KrpcError::BadLength {
            key: "t",
            len: tid.len(),
            expected: "1 to 16",
        });
    }
    let y = bytes_of(get(d, "y")?, "y")?;
    let read_only = match d.get(b"ro") {
        Some(v) => int_of(v, "ro")? == 1,
        None => false,
    };
    let ip = match d.get(b"ip") {
        Some(v) => compact_addr(bytes_of(v, "ip")?),
        None => None,
    };
    let body = match y {
        b"q" => Body::Query(decode_query(d)?),
        b"r" => Body::Response(decode_response(dict_of(get(d, "r")?, "r")?)?),
        b"e" => decode_error(get(d, "e")?)?,
        other => return Err(KrpcError::UnknownType(other.to_vec())),
    };
    Ok(Message {
        tid: tid.to_vec(),
        body,
        read_only,
        ip,
    })
}

fn decode_query(d: &Dict<'_>) -> Result<Query, KrpcError> {
    let method = bytes_of(get(d, "q")?, "q")?;
    let a = dict_of(get(d, "a")?, "a")?;
    let id = id_of(a, "id")?;
    Ok(match method {
        b"ping" => Query::Ping { id },
        b"find_node" => Query::FindNode {
            id,
            target: id_of(a, "target")?,
        },
        b"get_peers" => Query::GetPeers {
            id,
            info_hash: InfoHash(id_of(a, "info_hash")?.0),
        },
        b"announce_peer" => {
            let port = int_of(get(a, "port")?, "port")?;
            let port = u16::try_from(port).map_err(|_| KrpcError::BadPort(port))?;
            let implied_port = match a.get(b"implied_port") {
                Some(v) => int_of(v, "implied_port")? == 1,
                None => false,
            };
            let token = bytes_of(get(a, "token")?, "token")?;
            if token.len() > TOKEN_LEN_MAX {
                return Err(KrpcError::BadLength {
                    key: "token",
                    len: token.len(),
                    expected: "at most 64",
                });
            }
            Query::AnnouncePeer {
                id,
                info_hash: InfoHash(id_of(a, "info_hash")?.0),
                port,
                implied_port,
                token: token.to_vec(),
            }
        }
        other => Query::Unknown {
            id,
            method: other.iter().copied().take(64).collect(),
        },
    })
}

fn decode_response(r: &Dict<'_>) -> Result<Response, KrpcError> {
    let id = id_of(r, "id")?;
    let nodes = match r.get(b"nodes") {
        Some(v) => decode_compact_nodes(bytes_of(v, "nodes")?)?,
        None => Vec::new(),
    };
    let mut values = Vec::new();
    if let Some(v) = r.get(b"values") {
        let list = v.as_list().ok_or(KrpcError::WrongType {
            key: "values",
            expected: "a list",
            found: kind_name(v),
        })?;
        for item in list.iter().take(VALUES_DECODED_MAX) {
            let b = bytes_of(item, "values")?;
            match b.len() {
                6 => values.extend(compact_addr(b)),
                18 => {}
                len => {
                    return Err(KrpcError::BadLength {
                        key: "values",
                        len,
                        expected: "6 (or 18) per entry",
                    })
                }
            }
        }
    }
    let token = match r.get(b"token") {
        Some(v) => {
            let t = bytes_of(v, "token")?;
            if t.len() > TOKEN_LEN_MAX {
                return Err(KrpcError::BadLength {
                    key: "token",
                    len: t.len(),
                    expected: "at most 64",
                });
            }
            Some(t.to_vec())
        }
        None => None,
    };
    Ok(Response {
        id,
        nodes,
        values,
        token,
    })
}

fn decode_error(v: &Value<'_>) -> Result<Body, KrpcError> {
    let list = v.as_list().ok_or(KrpcError::WrongType {
        key: "e",
        expected: "a list",
        found: kind_name(v),
    })?;
    let code = match list.first() {
        Some(c) => int_of(c, "e")?,
        None => return Err(KrpcError::Missing { key: "e" }),
    };
    let message = match list.get(1).map(|m| &m.kind) {
        Some(ValueKind::Bytes(b)) => b.iter().copied().take(ERROR_MESSAGE_LEN_MAX).collect(),
        _ => Vec::new(),
    };
    Ok(Body::Error { code, message })
}

fn key(k: &str) -> Vec<u8> {
    k.as_bytes().to_vec()
}

impl Message {
    /// Canonical bencode of this message.
    pub fn encode(&self) -> Vec<u8> {
        let mut top = BTreeMap::new();
        top.insert(key("t"), OwnedValue::Bytes(self.tid.clone()));
        if self.read_only {
            top.insert(key("ro"), OwnedValue::Int(1));
        }
        if let Some(ip) = self.ip {
            top.insert(
                key("ip"),
                OwnedValue::Bytes(compact_addr_bytes(ip).to_vec()),
            );
        }
        match &self.body {
            Body::Query(q) => {
                top.insert(key("y"), OwnedValue::str("q"));
                let mut a = BTreeMap::new();
                a.insert(key("id"), OwnedValue::Bytes(q.sender_id().0.to_vec()));
                let method: &[u8] = match q {
                    Query::Ping { .. } => b"ping",
                    Query::FindNode { target, .. } => {
                        a.insert(key("target"), OwnedValue::Bytes(target.0.to_vec()));
                        b"find_node"
                    }
                    Query::GetPeers { info_hash, .. } => {
                        a.insert(key("info_hash"), OwnedValue::Bytes(info_hash.0.to_vec()));
                        b"get_peers"
                    }
                    Query::AnnouncePeer {
                        info_hash,
                        port,
                        implied_port,
                        token,
                        ..
                    } => {
                        a.insert(key("info_hash"), OwnedValue::Bytes(info_hash.0.to_vec()));
                        a.insert(key("port"), OwnedValue::Int(i64::from(*port)));
                        if *implied_port {
                            a.insert(key("implied_port"), OwnedValue::Int(1));
                        }
                        a.insert(key("token"), OwnedValue::Bytes(token.clone()));
                        b"announce_peer"
                    }
                    Query::Unknown { method, .. } => method,
                };
                top.insert(key("q"), OwnedValue::Bytes(method.to_vec()));
                top.insert(key("a"), OwnedValue::Dict(a));
            }
            Body::Response(r) => {
                top.insert(key("y"), OwnedValue::str("r"));
                let mut d = BTreeMap::new();
                d.insert(key("id"), OwnedValue::Bytes(r.id.0.to_vec()));
                if !r.nodes.is_empty() {
                    d.insert(
                        key("nodes"),
                        OwnedValue::Bytes(encode_compact_nodes(&r.nodes)),
                    );
                }
                if !r.values.is_empty() {
                    let values = r
                        .values
                        .iter()
                        .map(|a| OwnedValue::Bytes(compact_addr_bytes(*a).to_vec()))
                        .collect();
                    d.insert(key("values"), OwnedValue::List(values));
                }
                if let Some(t) = &r.token {
                    d.insert(key("token"), OwnedValue::Bytes(t.clone()));
                }
                top.insert(key("r"), OwnedValue::Dict(d));
            }
            Body::Error { code, message } => {
                top.insert(key("y"), OwnedValue::str("e"));
                top.insert(
                    key("e"),
                    OwnedValue::List(vec![
                        OwnedValue::Int(*code),
                        OwnedValue::Bytes(message.clone()),
                    ]),
                );
            }
        }
        OwnedValue::Dict(top).encode()
    }
}
