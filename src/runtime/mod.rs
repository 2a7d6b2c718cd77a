//! The IO layer: io_uring rings, disk reads, sockets. Everything that touches the
//! kernel lives here. (Stub: lands with the disk work.)
