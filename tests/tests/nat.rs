//! Seeding from behind home routers (issue 17, item 5): two nodes, each on a private LAN
//! behind its own router that translates addresses (nftables masquerade) and drops what
//! it did not ask for (a stateful firewall), as home routers do. The routers meet on an
//! "internet" that routes between them and to the network's relay (in this test's
//! process, over a veth pair) and has no route to any private LAN. Hosts, routers and the
//! internet are network namespaces this test makes (`ip netns`, veth pairs), and each node
//! runs in its host's namespace: the seeder's private address cannot be reached from the
//! other LAN, and the download still arrives, over iroh, byte for byte, paid with
//! receipts.
//!
//! Needs root (network namespaces), `ip` (iproute2) and `nft` (nftables), as `scripts/setup
//! --nat` installs: skipped (saying why) when they are missing, unless DSI_REQUIRE_NAT=1
//! (as `scripts/test` sets), when it fails.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output};

use devnet::harness::Service;
use dsi_protocol::{ChunkId, NodeId};
use dsi_tests::{init_node, node_lite_bin, node_lite_ok, random_file, sha256_of, start_relay_with};
use serde_json::Value;

const CHUNK: usize = 256 * 1024;

/// Why this machine cannot run the test, if it cannot.
fn missing() -> Option<String> {
    for tool in ["ip", "nft", "sysctl"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("`{tool}` (scripts/setup --nat installs it)"));
        }
    }
    // Making a namespace is the proof of the rights it needs (root is not enough in a
    // container without CAP_NET_ADMIN).
    static PROBES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let probe = format!("dsinat-{}-probe{n}", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .is_ok_and(|o| o.status.success());
    if !made {
        return Some("the right to make network namespaces (root with CAP_NET_ADMIN)".into());
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    None
}

/// Deletes the namespaces of earlier runs killed before they cleaned up (their process is
/// gone), with their veth pairs and the routes through them.
fn clear_stale_namespaces() {
    let listed = run("ip", &["netns", "list"]);
    for name in listed
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        let Some(pid) = name
            .strip_prefix("dsinat-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Runs `program args` and fails the test, with its output, unless it succeeds.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The namespaces of one run (deleted, with their veth pairs, when dropped) and the
/// processes in them (dropped first: killed).
struct Net {
    tag: String,
    services: Vec<Service>,
    namespaces: Vec<String>,
}

impl Drop for Net {
    fn drop(&mut self) {
        self.services.clear();
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl Net {
    fn ns(&self, name: &str) -> String {
        format!("dsinat-{}-{}-{name}", std::process::id(), self.tag)
    }

    fn add_ns(&mut self, name: &str) -> String {
        let ns = self.ns(name);
        run("ip", &["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        self.exec(&ns, &["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// `args` run in namespace `ns`.
    fn exec(&self, ns: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", ns];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// A veth pair between `a` and `b` (`None`: this process's namespace), named
    /// `d{tag}{name}a` and `d{tag}{name}b`, with the addresses `a_address` and `b_address`
    /// (CIDR), both ends up.
    fn link(&self, name: &str, (a, a_address): (Option<&str>, &str), (b, b_address): (&str, &str)) {
        let (a_end, b_end) = (self.end(name, 'a'), self.end(name, 'b'));
        let mut add = vec!["link", "add", &a_end];
        if let Some(a) = a {
            add.extend(["netns", a]);
        }
        add.extend(["type", "veth", "peer", "name", &b_end, "netns", b]);
        run("ip", &add);
        for (ns, end, address) in [(a, &a_end, a_address), (Some(b), &b_end, b_address)] {
            let up = |args: &[&str]| match ns {
                Some(ns) => self.exec(ns, args),
                None => run(args[0], &args[1..]),
            };
            up(&["ip", "addr", "add", address, "dev", end]);
            up(&["ip", "link", "set", end, "up"]);
        }
    }

    fn end(&self, name: &str, side: char) -> String {
        format!("d{}{name}{side}", self.tag)
    }

    /// A home router in namespace `router`: forwards between its LAN and WAN ends of
    /// link `lan` and `wan`, translates what leaves on the WAN to its WAN address and lets
    /// in from the WAN only what answers a connection made from the LAN.
    fn home_router(&self, router: &str, wan: &str, lan: &str) {
        let (wan_end, lan_end) = (self.end(wan, 'b'), self.end(lan, 'a'));
        self.exec(router, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        let rules = format!(
            "table ip home {{\n\
               chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;\n\
                 oifname \"{wan_end}\" masquerade\n\
               }}\n\
               chain forward {{ type filter hook forward priority filter; policy drop;\n\
                 ct state established,related accept\n\
                 iifname \"{lan_end}\" oifname \"{wan_end}\" accept\n\
               }}\n\
               chain input {{ type filter hook input priority filter; policy accept;\n\
                 iifname \"{wan_end}\" ct state established,related accept\n\
                 iifname \"{wan_end}\" drop\n\
               }}\n\
             }}\n"
        );
        let file = std::env::temp_dir().join(format!("dsinat-{}-{router}.nft", self.tag));
        std::fs::write(&file, rules).unwrap();
        self.exec(router, &["nft", "-f", file.to_str().unwrap()]);
        let _ = std::fs::remove_file(file);
    }

    /// `program args` in namespace `ns` as a [`Service`] (its first line names its URL).
    fn spawn(&mut self, name: &str, ns: &str, program: &Path, args: &[&str], log: &Path) -> String {
        let mut all: Vec<String> = vec!["netns".into(), "exec".into(), ns.into()];
        all.push(program.display().to_string());
        all.extend(args.iter().map(|a| a.to_string()));
        let service = Service::spawn(name, Path::new("ip"), &all, &[], log)
            .unwrap_or_else(|e| panic!("{name} starts in {ns}: {e:#}"));
        let url = service.url.clone();
        self.services.push(service);
        url
    }

    /// `node-lite --data-dir DIR args` run to completion in namespace `ns`.
    fn node_lite(&self, ns: &str, dir: &Path, args: &[&str]) -> Output {
        let bin = node_lite_bin().display().to_string();
        let data_dir = dir.display().to_string();
        let mut all = vec!["netns", "exec", ns, &bin, "--data-dir", &data_dir];
        all.extend_from_slice(args);
        Command::new("ip").args(&all).output().unwrap()
    }
}

fn node_id(dir: &Path) -> NodeId {
    node_lite_ok(dir, &["id"]).trim().parse().expect("node id")
}

/// Whether the test can run here: `false` (after saying why) when it cannot and is not
/// required to.
fn can_run() -> bool {
    let Some(missing) = missing() else {
        clear_stale_namespaces();
        return true;
    };
    let message = format!("the NAT test needs {missing}");
    if std::env::var("DSI_REQUIRE_NAT").as_deref() == Ok("1") {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    false
}

/// Two home networks on an internet `10.{octet}.0.0/16` (each test its own, so they run
/// at once): host A (`192.168.10.2`) behind router A (`10.{octet}.1.2` on the internet),
/// host B (`192.168.20.2`) behind router B (`10.{octet}.2.2`), and the address of this
/// process as the internet reaches it (`10.{octet}.0.1`).
struct HomeNetworks {
    net: Net,
    host_a: String,
    host_b: String,
    relay_ip: String,
    router_a_wan: String,
}

fn home_networks(name: &str, octet: u8) -> HomeNetworks {
    let mut net = Net {
        tag: format!("{}{name}", std::process::id() % 100_000),
        services: Vec::new(),
        namespaces: Vec::new(),
    };
    let ip = |rest: &str| format!("10.{octet}.{rest}");
    // The internet (forwarding between the routers and this process, no route to any
    // LAN), two routers, and a host on each router's LAN.
    let internet = net.add_ns("net");
    let (router_a, host_a) = (net.add_ns("ra"), net.add_ns("ha"));
    let (router_b, host_b) = (net.add_ns("rb"), net.add_ns("hb"));
    net.exec(&internet, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    net.link("r", (None, &ip("0.1/24")), (&internet, &ip("0.2/24")));
    // Back to the routers through the internet (the route goes with the link).
    run(
        "ip",
        &["route", "replace", &ip("0.0/16"), "via", &ip("0.2")],
    );
    net.link(
        "wa",
        (Some(&internet), &ip("1.1/24")),
        (&router_a, &ip("1.2/24")),
    );
    net.link(
        "wb",
        (Some(&internet), &ip("2.1/24")),
        (&router_b, &ip("2.2/24")),
    );
    net.link(
        "la",
        (Some(&router_a), "192.168.10.1/24"),
        (&host_a, "192.168.10.2/24"),
    );
    net.link(
        "lb",
        (Some(&router_b), "192.168.20.1/24"),
        (&host_b, "192.168.20.2/24"),
    );
    net.exec(
        &router_a,
        &["ip", "route", "add", "default", "via", &ip("1.1")],
    );
    net.exec(
        &router_b,
        &["ip", "route", "add", "default", "via", &ip("2.1")],
    );
    net.exec(
        &host_a,
        &["ip", "route", "add", "default", "via", "192.168.10.1"],
    );
    net.exec(
        &host_b,
        &["ip", "route", "add", "default", "via", "192.168.20.1"],
    );
    net.home_router(&router_a, "wa", "la");
    net.home_router(&router_b, "wb", "lb");
    HomeNetworks {
        net,
        host_a,
        host_b,
        relay_ip: ip("0.1"),
        router_a_wan: ip("1.2"),
    }
}

/// A seeder on host A and a downloader on host B, both on `relay_url` (with `edit` on
/// their configurations): the seeder's private address is out of reach from B, and by the
/// seeder's node id the download arrives byte for byte with a receipt for every chunk.
/// Returns how the downloader reached the seeder (its report's `path`) and the file's
/// length.
fn swap_across_routers(
    homes: &mut HomeNetworks,
    tmp: &Path,
    relay_url: &str,
    edit: impl Fn(&mut node_lite::Config),
) -> (Value, u64) {
    let (seeder_dir, downloader_dir) = (tmp.join("seeder"), tmp.join("downloader"));
    for dir in [&seeder_dir, &downloader_dir] {
        init_node(dir, |config| {
            config.iroh.relays = vec![relay_url.to_string()];
            edit(config);
        });
    }
    let file = tmp.join("data.bin");
    let len = 24 * CHUNK + 4_321;
    let sha = random_file(&file, len);
    let content = node_lite_ok(&seeder_dir, &["add", file.to_str().unwrap()])
        .trim()
        .to_string();
    let ids: Vec<ChunkId> = std::fs::read(&file)
        .unwrap()
        .chunks(CHUNK)
        .map(ChunkId::of)
        .collect();
    let (seeder_id, downloader_id) = (node_id(&seeder_dir), node_id(&downloader_dir));
    let host_a = homes.host_a.clone();
    let seeder_url = homes.net.spawn(
        "seeder",
        &host_a,
        node_lite_bin(),
        &[
            "--data-dir",
            seeder_dir.to_str().unwrap(),
            "serve",
            "--listen",
            "192.168.10.2:0",
        ],
        &tmp.join("seeder.log"),
    );

    // The seeder's own address is out of reach from the other LAN ...
    let direct = homes.net.node_lite(
        &homes.host_b,
        &downloader_dir,
        &[
            "get",
            &content,
            "--peer",
            &seeder_url,
            "--out",
            tmp.join("direct.bin").to_str().unwrap(),
        ],
    );
    let said = String::from_utf8_lossy(&direct.stderr);
    assert!(
        !direct.status.success() && said.contains("unreachable"),
        "the seeder's private address was reachable from another LAN: {said}"
    );

    // ... and by its node id the download arrives through the routers.
    let out = tmp.join("out.bin");
    let got = homes.net.node_lite(
        &homes.host_b,
        &downloader_dir,
        &[
            "get",
            &content,
            "--peer",
            &seeder_id.to_string(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(
        got.status.success(),
        "get behind a home router failed: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    let report: Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(sha256_of(&out), sha, "the bytes arrived intact");
    assert_eq!(report["chunks_fetched"], ids.len());
    let peer = &report["peers"][0];
    assert_eq!(peer["node_id"], seeder_id.to_string(), "{report}");
    assert_eq!(peer["receipts_accepted"], ids.len(), "{report}");

    // The seeder holds a receipt from the downloader for every chunk.
    let held = node_lite_ok(&seeder_dir, &["receipts", "--json"]);
    let held: Vec<node_lite::receipts::HeldReceipt> = serde_json::from_str(&held).unwrap();
    let paid: std::collections::HashSet<ChunkId> = held
        .iter()
        .filter(|h| h.receipt.receipt.downloader == downloader_id)
        .map(|h| h.receipt.receipt.chunk)
        .collect();
    assert_eq!(
        paid,
        ids.iter().copied().collect(),
        "a receipt for every chunk"
    );
    eprintln!("the downloader reached the seeder: {}", peer["path"]);
    (peer["path"].clone(), len as u64)
}

#[test]
fn nodes_behind_home_routers_swap_chunks_through_the_relay() {
    // A relay without address discovery: neither node learns the address its router
    // gives it, so the relay carries the whole exchange.
    if !can_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut homes = home_networks("r", 214);
    let relay = start_relay_with(dsi_relay::Settings {
        listen: format!("{}:0", homes.relay_ip).parse().unwrap(),
        ..dsi_relay::Settings::default()
    });
    let (path, len) = swap_across_routers(&mut homes, tmp.path(), &relay.url, |_| {});
    assert!(
        path["direct"].is_null(),
        "a direct path without discovery: {path}"
    );
    assert!(path["received_relayed"].as_u64().unwrap() >= len, "{path}");
}

#[test]
fn nodes_behind_home_routers_punch_holes_with_the_relays_address_discovery() {
    // The relay answers QUIC address discovery (its self-signed certificate given to the
    // nodes): each node learns the public address and port its router gives its socket
    // (Linux masquerade keeps a socket's port for every destination, as most home routers
    // do), the two punch holes through both routers, and most of the file comes on that
    // direct path, to router A's public address (the seeder's own address cannot be
    // reached).
    if !can_run() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut homes = home_networks("q", 215);
    let (cert, key) =
        dsi_relay::write_self_signed(&tmp.path().join("relay"), &[homes.relay_ip.clone()]).unwrap();
    let listen: std::net::SocketAddr = format!("{}:0", homes.relay_ip).parse().unwrap();
    let relay = start_relay_with(dsi_relay::Settings {
        listen,
        qad: Some(dsi_relay::Qad::from_pem_files(listen, &cert, &key).unwrap()),
        ..dsi_relay::Settings::default()
    });
    let qad_port = relay.qad.map(|address| address.port());
    assert!(qad_port.is_some(), "the relay answers no address discovery");
    let (path, len) = swap_across_routers(&mut homes, tmp.path(), &relay.url, |config| {
        config.iroh.qad_port = qad_port;
        config.iroh.relay_ca_file = Some(cert.clone());
    });
    let direct = path["direct"].as_str().unwrap_or_default();
    assert!(
        direct.starts_with(&format!("{}:", homes.router_a_wan)),
        "no hole punched through the routers: {path}"
    );
    // Most of the file came on that path (the relay carried the start).
    assert!(
        path["received_direct"].as_u64().unwrap() >= len / 2,
        "the chunks went through the relay: {path}"
    );
}
