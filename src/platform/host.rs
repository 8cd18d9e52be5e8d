//! Host identity: hostname, fqdn and the lock "host id" (`<fqdn>@<node>`), computed like borg so
//! that borg and rborg on one machine recognise each other's stale locks.

use std::sync::OnceLock;

/// `gethostname()` as the OS reports it.
pub fn raw_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for writes of its length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Short hostname (borg strips a domain some people put into /etc/hostname).
pub fn hostname() -> String {
    raw_hostname().split('.').next().unwrap_or("").to_string()
}

/// Canonical name: the first name of the first /etc/hosts line listing our hostname, which is
/// what getaddrinfo(AI_CANONNAME) answers without DNS; else the hostname itself.
pub fn fqdn() -> String {
    static FQDN: OnceLock<String> = OnceLock::new();
    FQDN.get_or_init(|| {
        let host = raw_hostname();
        if let Ok(hosts) = std::fs::read_to_string("/etc/hosts") {
            for line in hosts.lines() {
                let line = line.split('#').next().unwrap_or("");
                let mut words = line.split_whitespace();
                let _addr = words.next();
                let names: Vec<&str> = words.collect();
                if names.iter().any(|n| *n == host) {
                    return names[0].to_string();
                }
            }
        }
        host
    })
    .clone()
}

/// 48-bit node id like Python's `uuid.getnode()`: the MAC of the first real interface.
fn node_id() -> u64 {
    let mut best: Option<(u32, u64)> = None;
    if let Ok(rd) = std::fs::read_dir("/sys/class/net") {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name() == "lo" {
                continue;
            }
            let Ok(addr) = std::fs::read_to_string(p.join("address")) else {
                continue;
            };
            let hexs: String = addr.trim().split(':').collect();
            let Ok(mac) = u64::from_str_radix(&hexs, 16) else {
                continue;
            };
            if mac == 0 || hexs.len() != 12 {
                continue;
            }
            let up = std::fs::read_to_string(p.join("operstate"))
                .map(|s| s.trim() == "up")
                .unwrap_or(false);
            let idx: u32 = std::fs::read_to_string(p.join("ifindex"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(u32::MAX);
            // Prefer interfaces that are up, then the lowest ifindex.
            let rank = if up { idx } else { idx.saturating_add(1 << 20) };
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, mac));
            }
        }
    }
    best.map(|(_, m)| m).unwrap_or(0)
}

/// The lock-owner host id: `BORG_HOST_ID` or `<fqdn>@<node>`.
pub fn host_id() -> String {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| match std::env::var("BORG_HOST_ID") {
        Ok(v) if !v.is_empty() => v,
        _ => format!("{}@{}", fqdn(), node_id()),
    })
    .clone()
}
