// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * schoolgate's tc fast path (DESIGN.md §2). One program for the ingress of every segment
 * interface (client → anywhere), one for their egress (anywhere → client), one that only
 * counts on the WAN. Known flows are decided here; the first payload packets of unknown
 * web flows get a mark that sends them to the nfqueue slow path, which writes its verdict
 * into `flows`.
 */
#include "schoolgate.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Every map is pinned by name, so a restarted daemon finds the flow verdicts, counters
 * and rules the still-attached programs kept using while it was away.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32); /* ifindex */
	__type(value, struct segment);
	__uint(max_entries, MAX_SEGMENTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} segments SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct profile);
	__uint(max_entries, MAX_PROFILES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} profiles SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct mac);
	__type(value, __u16); /* profile id */
	__uint(max_entries, 16384);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} devices SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct port_key);
	__type(value, __u8); /* enum reason */
	__uint(max_entries, 4096);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lpm_v4);
	__type(value, __u8);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} internal_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lpm_v6);
	__type(value, __u8);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} internal_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lpm_v4);
	__type(value, struct blocked);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} blocked_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lpm_v6);
	__type(value, struct blocked);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} blocked_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flow_key);
	__type(value, struct flow);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32); /* segment id, or WAN_SLOT */
	__type(value, struct counters);
	__uint(max_entries, MAX_SEGMENTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counters SEC(".maps");

/*
 * Drops made by the rules above (not by flow verdicts: the slow path reports those when it
 * decides) go to the daemon as struct drop_event. Pinned like the rest, so the events of a
 * time without a reader wait for the next daemon, as many as the ring holds.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024); /* about 4096 events: 56 bytes and an 8-byte header each */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} drop_events SEC(".maps");

/*
 * When a flow last produced a drop event (bpf_ktime_get_ns), so that a flow's packets
 * produce one event per DROP_EVENT_INTERVAL_S, not one each. Keyed like flows but with the
 * client port left 0: clients retrying a blocked VPN or resolver from new ports count as
 * one flow.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flow_key);
	__type(value, __u64);
	__uint(max_entries, 8192);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} drop_seen SEC(".maps");

/* Anchors so bpf2go emits Go types for the enums and the map value structs. */
enum reason unused_reason __attribute__((unused));
enum mark unused_mark __attribute__((unused));
enum segment_flag unused_segment_flag __attribute__((unused));
enum profile_flag unused_profile_flag __attribute__((unused));
enum verdict unused_verdict __attribute__((unused));
enum limits unused_limits __attribute__((unused));
struct drop_event unused_drop_event __attribute__((unused));

/* Longer chains of IPv6 extension headers are left unparsed (no ports). */
#define MAX_EXT_HDRS 6

/* Refreshing last_seen on every packet would bounce the value's cache line between CPUs. */
#define LAST_SEEN_GRANULARITY_NS 1000000000ULL

struct pkt {
	union {
		__u8 b[16];
		__u32 w[4];
	} saddr, daddr; /* IPv4 as IPv4-mapped IPv6 */
	__u16 sport, dport; /* host order; valid when has_ports */
	__u8 family;        /* 4 or 6 */
	__u8 proto;         /* upper-layer protocol, after IPv6 extension headers */
	__u8 has_ports;
	__u8 payload;    /* TCP segment carries data */
	__u8 tcp_rst;    /* TCP segment has RST set */
	__u8 icmp6_type; /* valid when proto is ICMPv6 and the header is present */
};

struct l4_ext {
	__u8 nexthdr;
	__u8 len;
	__be16 frag_off; /* fragment header only */
	__u32 rest;
};

static __always_inline void count_drop(struct counters *c, __u8 reason)
{
	if (c)
		c->drops[reason & (REASON_MAX - 1)]++;
}

static __always_inline void set_mark(struct __sk_buff *skb, __u32 mark)
{
	skb->mark = (skb->mark & ~(__u32)MARK_MASK) | mark;
}

static __always_inline struct counters *count(struct __sk_buff *skb, __u32 slot)
{
	struct counters *c = bpf_map_lookup_elem(&counters, &slot);

	if (c) {
		c->packets++;
		c->bytes += skb->len;
	}
	return c;
}

/*
 * parse_l4 reads ports (and whether a TCP segment carries data) from the transport
 * header at l4. ip_payload is the IP payload length the header claimed from l4 on; the
 * frame may be longer (Ethernet padding), so it, not skb->len, decides "has data".
 */
static __always_inline void parse_l4(struct pkt *p, void *l4, void *data_end, __s32 ip_payload)
{
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > data_end)
			return;
		p->sport = bpf_ntohs(th->source);
		p->dport = bpf_ntohs(th->dest);
		p->has_ports = 1;
		p->payload = ip_payload > (__s32)((th->doff_res >> 4) * 4);
		p->tcp_rst = (th->flags & 0x04) != 0;
	} else if (p->proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > data_end)
			return;
		p->sport = bpf_ntohs(uh->source);
		p->dport = bpf_ntohs(uh->dest);
		p->has_ports = 1;
		p->payload = 1;
	} else if (p->proto == IPPROTO_ICMPV6) {
		__u8 *type = l4;

		if ((void *)(type + 1) > data_end)
			return;
		p->icmp6_type = *type;
	}
}

/* parse fills p from an IPv4 or IPv6 frame; it returns -1 for anything else. */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 ihl;

		if ((void *)(ip + 1) > data_end)
			return -1;
		ihl = (ip->ihl_version & 0x0f) * 4;
		if (ihl < sizeof(*ip))
			return -1;
		p->family = 4;
		p->proto = ip->protocol;
		p->saddr.w[2] = bpf_htonl(0x0000ffff);
		p->daddr.w[2] = bpf_htonl(0x0000ffff);
		p->saddr.w[3] = ip->saddr;
		p->daddr.w[3] = ip->daddr;
		/* Only the first fragment has the transport header. */
		if (ip->frag_off & bpf_htons(0x1fff))
			return 0;
		parse_l4(p, (void *)ip + ihl, data_end, (__s32)bpf_ntohs(ip->tot_len) - (__s32)ihl);
		return 0;
	}

	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		void *cur = ip6 + 1;
		__s32 left; /* IP payload bytes from cur on */
		__u8 nh;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		p->family = 6;
		__builtin_memcpy(p->saddr.b, ip6->saddr, 16);
		__builtin_memcpy(p->daddr.b, ip6->daddr, 16);
		nh = ip6->nexthdr;
		left = bpf_ntohs(ip6->payload_len);

#pragma unroll
		for (int i = 0; i < MAX_EXT_HDRS; i++) {
			struct l4_ext *h = cur;
			__u32 len;

			if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_DSTOPTS &&
			    nh != IPPROTO_FRAGMENT && nh != IPPROTO_AH)
				break;
			if ((void *)(h + 1) > data_end) {
				p->proto = nh;
				return 0;
			}
			if (nh == IPPROTO_FRAGMENT) {
				if (h->frag_off & bpf_htons(0xfff8)) {
					/* Not the first fragment: no transport header. */
					p->proto = h->nexthdr;
					return 0;
				}
				len = 8;
			} else if (nh == IPPROTO_AH) {
				len = ((__u32)h->len + 2) * 4;
			} else {
				len = ((__u32)h->len + 1) * 8;
			}
			nh = h->nexthdr;
			cur += len;
			left -= len;
		}
		p->proto = nh;
		parse_l4(p, cur, data_end, left);
		return 0;
	}
	return -1;
}

static __always_inline int is_internal(struct pkt *p)
{
	if (p->family == 4) {
		struct lpm_v4 k = {.prefixlen = 32};

		__builtin_memcpy(k.addr, &p->daddr.w[3], 4);
		return bpf_map_lookup_elem(&internal_v4, &k) != 0;
	}
	struct lpm_v6 k6 = {.prefixlen = 128};

	__builtin_memcpy(k6.addr, p->daddr.b, 16);
	return bpf_map_lookup_elem(&internal_v6, &k6) != 0;
}

/* What a guest still needs from the internal networks: DNS, DHCP, IPv6 neighbour discovery. */
static __always_inline int guest_exempt(struct pkt *p)
{
	if (p->has_ports && (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) && p->dport == 53)
		return 1;
	/* DHCPv4 and DHCPv6 (to the ff02::1:2 multicast group). */
	if (p->has_ports && p->proto == IPPROTO_UDP && (p->dport == 67 || p->dport == 547))
		return 1;
	/* Router and neighbour solicitation/advertisement: IPv6 breaks without them. */
	if (p->family == 6 && p->proto == IPPROTO_ICMPV6 && p->icmp6_type >= 133 &&
	    p->icmp6_type <= 136)
		return 1;
	return 0;
}

static __always_inline __u8 blocked_reason(struct pkt *p, __u16 profile)
{
	struct blocked *b;

	if (p->family == 4) {
		struct lpm_v4 k = {.prefixlen = 32};

		__builtin_memcpy(k.addr, &p->daddr.w[3], 4);
		b = bpf_map_lookup_elem(&blocked_v4, &k);
	} else {
		struct lpm_v6 k6 = {.prefixlen = 128};

		__builtin_memcpy(k6.addr, p->daddr.b, 16);
		b = bpf_map_lookup_elem(&blocked_v6, &k6);
	}
	if (b && profile < MAX_PROFILES && (b->profiles & (1ULL << profile)))
		return b->reason ? b->reason : REASON_ADDRESS;
	return REASON_NONE;
}

/*
 * report_drop tells the daemon about a dropped packet, unless its flow already did within
 * DROP_EVENT_INTERVAL_S. Two CPUs dropping packets of one flow at the same moment may
 * both report it; a full ring buffer is counted in events_lost.
 */
static __always_inline void report_drop(struct counters *c, struct pkt *p, struct mac *m,
					__u8 reason, __u16 segment, __u16 profile)
{
	struct drop_event e;
	struct flow_key k;
	__u64 now = bpf_ktime_get_ns();
	__u64 *last;

	__builtin_memset(&k, 0, sizeof(k));
	__builtin_memcpy(k.client, p->saddr.b, 16);
	__builtin_memcpy(k.server, p->daddr.b, 16);
	k.server_port = p->dport;
	k.proto = p->proto;
	last = bpf_map_lookup_elem(&drop_seen, &k);
	if (last) {
		if (now - *last < DROP_EVENT_INTERVAL_S * 1000000000ULL)
			return;
		*last = now;
	} else if (bpf_map_update_elem(&drop_seen, &k, &now, BPF_NOEXIST) == -EEXIST) {
		return; /* another CPU has just reported the flow */
	}

	e.time = now;
	__builtin_memcpy(e.client, p->saddr.b, 16);
	__builtin_memcpy(e.server, p->daddr.b, 16);
	e.client_port = p->sport;
	e.server_port = p->dport;
	e.segment = segment;
	e.profile = profile;
	__builtin_memcpy(e.mac, m->addr, 6);
	e.proto = p->proto;
	e.reason = reason;
	if (bpf_ringbuf_output(&drop_events, &e, sizeof(e), 0) != 0 && c)
		c->events_lost++;
}

/* The flows the slow path judges by name: HTTPS (TLS and QUIC) and plain HTTP. */
static __always_inline int is_web(__u8 proto, __u16 port)
{
	return (proto == IPPROTO_TCP && (port == 443 || port == 80)) ||
	       (proto == IPPROTO_UDP && port == 443);
}

SEC("tc")
int segment_ingress(struct __sk_buff *skb)
{
	/*
	 * At tc ingress ingress_ifindex is the receiving device, like ifindex; unlike
	 * ifindex, BPF_PROG_TEST_RUN takes it from the context without needing the device
	 * to exist, which lets the tests give every case its own segment.
	 */
	__u32 ifindex = skb->ingress_ifindex;
	struct segment *seg = bpf_map_lookup_elem(&segments, &ifindex);
	struct counters *c;
	struct pkt p = {};
	struct mac m;
	__u16 segment, profile;
	__u8 reason;

	if (!seg)
		return TC_ACT_OK;
	segment = seg->id;
	c = count(skb, segment);
	if (parse(skb, &p) < 0)
		return TC_ACT_OK;

	profile = seg->profile;
	{
		void *data = (void *)(long)skb->data;
		void *data_end = (void *)(long)skb->data_end;
		struct ethhdr *eth = data;
		__u16 *dev;

		if ((void *)(eth + 1) > data_end)
			return TC_ACT_OK;
		__builtin_memcpy(m.addr, eth->h_source, 6);
		dev = bpf_map_lookup_elem(&devices, &m);
		if (dev)
			profile = *dev;
	}

	if ((seg->flags & SEGMENT_GUEST) && is_internal(&p) && !guest_exempt(&p)) {
		reason = REASON_GUEST;
		goto drop;
	}

	if (p.has_ports) {
		struct port_key pk = {.profile = profile, .proto = p.proto, .port = p.dport};
		__u8 *port_reason = bpf_map_lookup_elem(&ports, &pk);

		if (port_reason) {
			reason = *port_reason;
			goto drop;
		}
	}

	reason = blocked_reason(&p, profile);
	if (reason != REASON_NONE)
		goto drop;

	if (!p.has_ports || !is_web(p.proto, p.dport))
		return TC_ACT_OK;

	if (p.proto == IPPROTO_UDP) {
		__u32 id = profile;
		struct profile *prof = bpf_map_lookup_elem(&profiles, &id);

		if (prof && (prof->flags & PROFILE_QUIC_BLOCK)) {
			reason = REASON_QUIC;
			goto drop;
		}
		if (prof && (prof->flags & PROFILE_QUIC_ALLOW))
			return TC_ACT_OK;
	}

	struct flow_key k;
	struct flow *f;

	__builtin_memset(&k, 0, sizeof(k));
	__builtin_memcpy(k.client, p.saddr.b, 16);
	__builtin_memcpy(k.server, p.daddr.b, 16);
	k.client_port = p.sport;
	k.server_port = p.dport;
	k.proto = p.proto;
	f = bpf_map_lookup_elem(&flows, &k);
	if (f) {
		if (f->verdict == VERDICT_ALLOW) {
			__u64 now = bpf_ktime_get_ns();

			if (now - f->last_seen > LAST_SEEN_GRANULARITY_NS)
				f->last_seen = now;
			if (c)
				c->flow_hits++;
			return TC_ACT_OK;
		}
		if (f->verdict == VERDICT_BLOCK || f->verdict == VERDICT_DROP) {
			count_drop(c, REASON_FLOW);
			if (f->verdict == VERDICT_BLOCK && p.proto == IPPROTO_TCP) {
				/* The nftables table answers with a reset, so the client gives up at once. */
				set_mark(skb, MARK_BLOCK);
				return TC_ACT_OK;
			}
			/*
			 * VERDICT_DROP: the client already has its answer (the block page, which
			 * closed the connection); a reset for its acknowledgement or FIN could make
			 * it throw the page away unread.
			 */
			return TC_ACT_SHOT;
		}
	}

	/* SYNs and bare ACKs carry nothing to judge; the first data packet does. */
	if (!p.payload)
		return TC_ACT_OK;
	set_mark(skb, MARK_QUEUE);
	if (c)
		c->handoffs++;
	return TC_ACT_OK;

drop:
	/* One copy of the reporting code for every rule above. */
	count_drop(c, reason);
	report_drop(c, &p, &m, reason, segment, profile);
	return TC_ACT_SHOT;
}

SEC("tc")
int segment_egress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct segment *seg = bpf_map_lookup_elem(&segments, &ifindex);
	struct counters *c;
	struct pkt p = {};
	struct flow_key k;
	struct flow *f;

	if (!seg)
		return TC_ACT_OK;
	c = count(skb, seg->id);
	if (parse(skb, &p) < 0 || !p.has_ports || !is_web(p.proto, p.sport))
		return TC_ACT_OK;

	/* Server → client: the key is the reverse of the packet's addresses. */
	__builtin_memset(&k, 0, sizeof(k));
	__builtin_memcpy(k.client, p.daddr.b, 16);
	__builtin_memcpy(k.server, p.saddr.b, 16);
	k.client_port = p.dport;
	k.server_port = p.sport;
	k.proto = p.proto;
	f = bpf_map_lookup_elem(&flows, &k);
	if (!f)
		return TC_ACT_OK;
	/*
	 * The reset the nftables table sends for a blocked TCP flow travels this way too, as
	 * if from the server: it must reach the client, or the client waits for a timeout.
	 * A silently dropped flow expects no reset: the slow path's block page (sent before
	 * the verdict was written) has closed it, and any reset now, be it the real server's
	 * answer to a packet that slipped through before the verdict or the table's, could make
	 * the client discard the page. So everything is dropped, resets too.
	 */
	if (f->verdict == VERDICT_DROP || (f->verdict == VERDICT_BLOCK && !p.tcp_rst)) {
		count_drop(c, REASON_FLOW);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

SEC("tc")
int wan(struct __sk_buff *skb)
{
	count(skb, WAN_SLOT);
	return TC_ACT_OK;
}
