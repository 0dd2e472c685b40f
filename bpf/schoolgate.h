/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types shared between the tc programs and datapath/filter. bpf2go turns the ones named
 * with -type into Go types, so a change here shows up as a compile or test failure on the
 * Go side instead of as silently misread maps.
 */
#ifndef SCHOOLGATE_H
#define SCHOOLGATE_H

#include "include/kernel.h"

/* Why a packet was dropped: the index into counters.drops. */
enum reason {
	REASON_NONE = 0,
	REASON_GUEST = 1,   /* guest segment to an internal address */
	REASON_DOT = 2,     /* DNS over TLS/QUIC port */
	REASON_VPN = 3,     /* VPN port */
	REASON_ADDRESS = 4, /* destination in a blocked address set */
	REASON_QUIC = 5,    /* QUIC blocked by the profile */
	REASON_FLOW = 6,    /* the slow path blocked the flow */
	REASON_PORT = 7,    /* any other per-profile port rule */
	REASON_MAX = 8,     /* a power of two, so masking keeps indexes in bounds */
};

/* skb->mark bits the nftables table matches on; the rest of the mark is left alone. */
enum mark {
	MARK_MASK = 0x0f000000,
	MARK_QUEUE = 0x01000000, /* unknown flow: send to nfqueue */
	MARK_BLOCK = 0x02000000, /* blocked TCP flow: answer with a reset */
};

enum segment_flag {
	SEGMENT_GUEST = 1,
};

enum profile_flag {
	PROFILE_QUIC_BLOCK = 1,
	PROFILE_QUIC_ALLOW = 2,
};

/* flows: what the slow path decided about a flow. */
enum verdict {
	VERDICT_ALLOW = 1,
	VERDICT_BLOCK = 2, /* blocked: TCP gets MARK_BLOCK (a reset), UDP is dropped */
	/*
	 * Blocked silently: the client's packets are dropped with no reset, and nothing of the
	 * server's, resets included, reaches the client. For flows the slow path has already
	 * answered itself (the block page), whose end a reset would spoil.
	 */
	VERDICT_DROP = 3,
};

enum limits {
	MAX_PROFILES = 64,  /* profile ids index a 64-bit mask in blocked_v4/v6 */
	MAX_SEGMENTS = 256, /* counter slots; the last one is the WAN's */
	WAN_SLOT = 255,
	DROP_EVENT_INTERVAL_S = 60, /* at most one drop event per flow this often */
};

/* segments: ifindex → segment. */
struct segment {
	__u16 id;
	__u16 profile;
	__u32 flags; /* enum segment_flag */
};

/* profiles: profile id → profile. */
struct profile {
	__u32 flags; /* enum profile_flag */
};

struct mac {
	__u8 addr[6];
};

/* ports: a destination port blocked for a profile → enum reason. */
struct port_key {
	__u16 profile;
	__u8 proto;
	__u8 pad;
	__u16 port; /* host byte order */
};

struct lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

struct blocked {
	__u64 profiles; /* bit n set: blocked for profile n */
	__u8 reason;
	__u8 pad[7];
};

/*
 * flows: one connection, always keyed from the client's side (the host in the segment),
 * IPv4 addresses as IPv4-mapped IPv6, ports in host byte order.
 */
struct flow_key {
	__u8 client[16];
	__u8 server[16];
	__u16 client_port;
	__u16 server_port;
	__u8 proto;
	__u8 pad[3];
};

struct flow {
	__u8 verdict; /* enum verdict */
	__u8 reason;
	__u16 profile;
	__u32 pad;
	__u64 last_seen; /* bpf_ktime_get_ns */
};

struct counters {
	__u64 packets;
	__u64 bytes;
	__u64 handoffs;
	__u64 flow_hits;
	__u64 drops[REASON_MAX];
	__u64 events_lost; /* drop events the full ring buffer had no room for */
};

/*
 * drop_events: a packet the fast path's own rules dropped (enum reason: guest, dot, vpn,
 * address, quic, port), at most once per flow and DROP_EVENT_INTERVAL_S. Addresses and
 * ports as in struct flow_key.
 */
struct drop_event {
	__u64 time; /* bpf_ktime_get_ns */
	__u8 client[16];
	__u8 server[16];
	__u16 client_port;
	__u16 server_port;
	__u16 segment;
	__u16 profile;
	__u8 mac[6]; /* the client's, the frame's Ethernet source */
	__u8 proto;
	__u8 reason; /* enum reason */
};

#endif
