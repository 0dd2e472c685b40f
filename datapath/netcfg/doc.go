// Package netcfg prepares the host for schoolgate: it brings up each segment's
// link (creating VLANs on the LAN trunk), gives the appliance its gateway
// addresses, turns on forwarding, and installs schoolgate's own nftables table
// (DNS redirect, masquerade to the WAN, the nfqueue slow-path hand-off, block
// verdicts and guest isolation).
//
// Everything is done over netlink (vishvananda/netlink and google/nftables) in
// the network namespace that New was called in; no ip or nft binaries are
// needed. The table is replaced atomically and nothing outside it is touched,
// so other firewall users on the box keep their rules.
package netcfg
