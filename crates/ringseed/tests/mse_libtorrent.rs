//! The MSE initiator against a real responder: a libtorrent 2.0 seed
//! (python3-libtorrent) on 127.0.140.2 that forces the obfuscated handshake
//! in both directions (`pe_forced`). The test dials it from 127.0.140.1 over
//! a plain blocking socket, runs `mse::Initiator`, then sends a BitTorrent
//! handshake by the selected method; libtorrent's reply must decode to the
//! same info-hash. Two cases: libtorrent allows only RC4 and we provide RC4
//! (RC4 on the payload), and libtorrent allows both and we provide both
//! (libtorrent selects plaintext after the hidden header). Bounded: every
//! read has a deadline; the python process is killed by its pid when the
//! test ends.

#[path = "support/libtorrent.rs"]
mod libtorrent;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtorrent::{make_torrent, require_libtorrent, start_seed, Python, PYTHON, START_TIMEOUT};
use ringseed::hash::sha1;
use ringseed::mse::{
    req2_hash, CryptoMethod, CryptoSet, Established, Initiator, InitiatorConfig, PrivateKey,
    Progress, Responder, ResponderConfig,
};
use ringseed::InfoHash;

const OUR_IP: &str = "127.0.140.1";
const SEED_IP: &str = "127.0.140.2";
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
const PIECE_BYTES: u64 = 16 * 1024;
const PIECES: u64 = 4;
const BT_HANDSHAKE_BYTES: usize = 68;

/// A libtorrent seed forcing the obfuscated handshake (`pe_forced` both ways)
/// with argv[5] as `allowed_enc_level` (`rc4` or `both`): prints `lt: seeding
/// on IP:PORT` once its data checked, seeds until killed or argv[4] seconds
/// pass.
const SEED_SCRIPT: &str = r#"
import os, sys, time
import libtorrent as lt
torrent, save, ip, timeout, level = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
ses = lt.session({
    "listen_interfaces": f"{ip}:0",
    "outgoing_interfaces": ip,
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "allow_multiple_connections_per_ip": True,
    "in_enc_policy": int(lt.enc_policy.forced),
    "out_enc_policy": int(lt.enc_policy.forced),
    "allowed_enc_level": int(getattr(lt.enc_level, level)),
    "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.status_notification,
})
ti = lt.torrent_info(torrent)
h = ses.add_torrent({"ti": ti, "save_path": save})
end = time.monotonic() + timeout
announced = False
while time.monotonic() < end:
    ses.wait_for_alert(200)
    for a in ses.pop_alerts():
        if a.category() & lt.alert.category_t.error_notification:
            print(f"lt: {a.message()}", flush=True)
    st = h.status()
    if st.errc.value() != 0:
        print(f"lt: error {st.errc.message()}", flush=True)
        os._exit(1)
    if st.is_seeding and not announced and st.num_pieces == ti.num_pieces():
        announced = True
        print(f"lt: seeding on {ip}:{ses.listen_port()}", flush=True)
sys.stdout.flush()
os._exit(0)
"#;

/// A libtorrent downloader with the same encryption settings that dials
/// argv[6]:argv[7] (again every second) until killed or argv[4] seconds pass.
const DIAL_SCRIPT: &str = r#"
import os, sys, time
import libtorrent as lt
torrent, save, ip, timeout, level = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
peer = (sys.argv[6], int(sys.argv[7]))
ses = lt.session({
    "listen_interfaces": f"{ip}:0",
    "outgoing_interfaces": ip,
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "allow_multiple_connections_per_ip": True,
    "enable_outgoing_utp": False,
    "enable_incoming_utp": False,
    "in_enc_policy": int(lt.enc_policy.forced),
    "out_enc_policy": int(lt.enc_policy.forced),
    "allowed_enc_level": int(getattr(lt.enc_level, level)),
    "alert_mask": lt.alert.category_t.error_notification,
})
h = ses.add_torrent({"ti": lt.torrent_info(torrent), "save_path": save})
# Not auto-managed: otherwise it stays paused for a while and dials no one.
h.unset_flags(lt.torrent_flags.auto_managed)
h.resume()
end = time.monotonic() + timeout
while time.monotonic() < end:
    h.connect_peer(peer)
    ses.wait_for_alert(1000)
    for a in ses.pop_alerts():
        print(f"lt: {a.message()}", flush=True)
sys.stdout.flush()
os._exit(0)
"#;

/// A blocking TCP connection from `OUR_IP` to `to`, reads time out.
fn dial(to: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{OUR_IP}:0").parse().unwrap();
    sock.bind(&from.into()).unwrap();
    sock.connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap();
    let stream: TcpStream = sock.into();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    stream
}

/// Reads what is there (up to 4 KiB) before `deadline`; panics after it.
fn read_some(stream: &mut TcpStream, deadline: Instant, what: &str) -> Vec<u8> {
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        match stream.read(&mut buf) {
            Ok(0) => panic!("libtorrent closed the connection during {what}"),
            Ok(n) => return buf[..n].to_vec(),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read during {what}: {e}"),
        }
    }
}

/// Runs the MSE handshake providing `provide` against a seed allowing
/// `level`, sends a BitTorrent handshake by the selected method and checks
/// libtorrent's reply; returns the method selected.
fn handshake_with_seed(level: &str, provide: CryptoSet) -> CryptoMethod {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let info_hash = InfoHash(sha1(&make_torrent(dir.path(), PIECES, PIECE_BYTES)));
    let args = [
        dir.path().join("t.torrent").into_os_string(),
        dir.path().as_os_str().to_owned(),
        SEED_IP.into(),
        "120".into(),
        level.into(),
    ];
    let (seed, seed_addr) = start_seed(
        SEED_SCRIPT,
        &args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>(),
    );

    let mut stream = dial(seed_addr);
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    // Fixed "random" values: the test needs no secrecy, only reproducibility.
    let mut mse = Initiator::new(InitiatorConfig {
        info_hash,
        private_key: PrivateKey(*b"ringseed-mse-test-k1"),
        pad: vec![0x5a; 37],
        encrypted_pad_len: 11,
        provide,
        initial_payload: Vec::new(),
    })
    .unwrap();
    loop {
        stream.write_all(&mse.take_outgoing()).unwrap();
        let got = read_some(&mut stream, deadline, "the MSE handshake");
        if mse.receive(&got).unwrap() == Progress::Done {
            stream.write_all(&mse.take_outgoing()).unwrap();
            break;
        }
    }
    let mut est = mse.established().unwrap();

    let mut hs = Vec::with_capacity(BT_HANDSHAKE_BYTES);
    hs.push(19);
    hs.extend_from_slice(b"BitTorrent protocol");
    hs.extend_from_slice(&[0; 8]);
    hs.extend_from_slice(&info_hash.0);
    hs.extend_from_slice(b"-RS0001-msetest00001");
    if let Some(enc) = est.encryptor.as_mut() {
        enc.apply(&mut hs);
    }
    stream.write_all(&hs).unwrap();

    let first = est.remaining.clone();
    let reply = read_bt_handshake(&mut stream, deadline, &mut est, first);
    drop(stream);
    drop(seed);
    assert_names(&reply, &info_hash);
    est.method
}

/// Reads libtorrent's BitTorrent handshake after the MSE one: `have`
/// (what came with the MSE handshake, decrypted), then more bytes,
/// decrypted when RC4 was selected, until a whole handshake is there.
fn read_bt_handshake(
    stream: &mut TcpStream,
    deadline: Instant,
    est: &mut Established,
    mut have: Vec<u8>,
) -> Vec<u8> {
    while have.len() < BT_HANDSHAKE_BYTES {
        let mut more = read_some(stream, deadline, "libtorrent's handshake");
        if let Some(dec) = est.decryptor.as_mut() {
            dec.apply(&mut more);
        }
        have.extend(more);
    }
    have
}

/// `hs` is a BitTorrent handshake for `info_hash`.
fn assert_names(hs: &[u8], info_hash: &InfoHash) {
    assert_eq!(hs[0], 19);
    assert_eq!(&hs[1..20], b"BitTorrent protocol");
    assert_eq!(&hs[28..48], &info_hash.0, "the handshake names our torrent");
}

#[test]
fn rc4_handshake_with_a_libtorrent_seed_that_forces_rc4() {
    let method = handshake_with_seed("rc4", CryptoSet::RC4);
    assert_eq!(method, CryptoMethod::Rc4);
}

#[test]
fn obfuscated_header_then_plaintext_with_a_libtorrent_seed_allowing_both() {
    let method = handshake_with_seed("both", CryptoSet::BOTH);
    assert_eq!(
        method,
        CryptoMethod::Plaintext,
        "libtorrent picks plaintext"
    );
}

/// Lets libtorrent (allowing `level`) dial us; runs `mse::Responder` allowing
/// `allowed` and checks that libtorrent's BitTorrent handshake (in IA or
/// after) names our torrent; returns the method selected.
fn libtorrent_dials_us(level: &str, allowed: CryptoSet) -> CryptoMethod {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let info_hash = InfoHash(sha1(&make_torrent(dir.path(), PIECES, PIECE_BYTES)));
    let empty = dir.path().join("download");
    std::fs::create_dir(&empty).unwrap();
    let listener = TcpListener::bind(format!("{OUR_IP}:0")).unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let child = Command::new(PYTHON)
        .arg("-c")
        .arg(DIAL_SCRIPT)
        .arg(dir.path().join("t.torrent"))
        .arg(&empty)
        .arg(SEED_IP)
        .arg("120")
        .arg(level)
        .arg(OUR_IP)
        .arg(&port)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start /usr/bin/python3");
    let peer = Python(child);
    let deadline = Instant::now() + START_TIMEOUT;
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "libtorrent did not dial us");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let ours = req2_hash(&info_hash);
    let lookup = move |req2: &[u8; 20]| (*req2 == ours).then_some(info_hash);
    let mut mse = Responder::new(
        ResponderConfig {
            private_key: PrivateKey(*b"ringseed-mse-test-k2"),
            pad: vec![0xa5; 301],
            encrypted_pad_len: 7,
            allowed,
        },
        lookup,
    )
    .unwrap();
    loop {
        let got = read_some(&mut stream, deadline, "the MSE handshake");
        let progress = mse.receive(&got).unwrap();
        stream.write_all(&mse.take_outgoing()).unwrap();
        if progress == Progress::Done {
            break;
        }
    }
    let mut est = mse.established().unwrap();
    assert_eq!(est.info_hash, info_hash);
    let mut first = est.initial_payload.clone();
    first.extend_from_slice(&est.remaining);
    let hs = read_bt_handshake(&mut stream, deadline, &mut est, first);
    drop(stream);
    drop(peer);
    assert_names(&hs, &info_hash);
    est.method
}

#[test]
fn responder_accepts_a_libtorrent_peer_that_forces_rc4() {
    assert_eq!(
        libtorrent_dials_us("rc4", CryptoSet::RC4),
        CryptoMethod::Rc4
    );
}

#[test]
fn responder_selects_plaintext_when_libtorrent_offers_both() {
    assert_eq!(
        libtorrent_dials_us("both", CryptoSet::BOTH),
        CryptoMethod::Plaintext
    );
}
