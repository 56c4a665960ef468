//! Brings up `lo` in the container's new network namespace.
//!
//! libcontainer 0.7 leaves the loopback interface of a new network namespace down, so even
//! `127.0.0.1` is unreachable; build tools and test suites expect a working loopback (as
//! with `docker --network none`). The helper, still host root and single-threaded, enters
//! the namespace of the created (not yet started) container init, opens a netlink socket
//! there (a socket stays bound to the namespace it was created in), returns to its own
//! namespace and sets the link up. Nothing else is configured: no other interface, no route
//! off the machine.

use std::fs::File;

use libcontainer::network::link::LinkClient;
use libcontainer::network::wrapper::create_network_client;
use nix::sched::{CloneFlags, setns};
use nix::unistd::Pid;

/// Sets `lo` up in the network namespace of process `init`.
pub(crate) fn bring_up(init: Pid) -> Result<(), String> {
    let own_path = "/proc/self/ns/net";
    let own = File::open(own_path).map_err(|e| format!("opening {own_path}: {e}"))?;
    let target_path = format!("/proc/{init}/ns/net");
    let target = File::open(&target_path).map_err(|e| format!("opening {target_path}: {e}"))?;

    setns(&target, CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("entering the container's network namespace: {e}"))?;
    let client = LinkClient::new(create_network_client());
    // Return first, whatever happened: the helper must not stay in the container's namespace.
    setns(&own, CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("returning to the helper's network namespace: {e}"))?;

    let mut client = client.map_err(|e| format!("opening a netlink socket: {e}"))?;
    let lo = client
        .get_by_name("lo")
        .map_err(|e| format!("looking up lo: {e}"))?;
    client
        .set_up(lo.header.index)
        .map_err(|e| format!("setting lo up: {e}"))
}
