/*
 * netacct.bpf.c: netacct's cgroup_skb programs, compiled with clang -target bpf by the NetacctBPFObjectPlugin
 * (scripts/bpf/embed-object.sh) and embedded in the tools; loaded by jb_netacct_bpf.c.
 *
 * Every IP packet of a socket in the cgroup (and its descendants) is counted once, by direction and by whether
 * its remote address is internal: one longest-prefix lookup in jb_networks, keyed by family and address. A job's
 * own programs (jb_job_*, netacct --backend bpf) count into the entry of the socket's cgroup; the node
 * service's (jb_netacct_*, netacct --node) also into the entries of its ancestors, so each entry is a subtree's
 * sum. They are separate programs, not one with a setting, because the verifier walks the ancestor loop level by
 * level: a job's programs, loaded for every job, verify in a fraction of the time without it.
 * Loopback (127.0.0.0/8, ::1) is in that map as "not counted". The skb's data starts at the IP header in both
 * hooks, so the header is read at offset 0.
 */
#define JB_NETACCT_BPF_PROGRAM 1
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "jb_netacct_bpf.h"

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, JB_NETACCT_MAX_NETWORKS);
    __type(key, struct jb_netacct_key);
    __type(value, __u32);
} jb_networks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, JB_NETACCT_MAX_CGROUPS);
    __type(key, __u64);
    __type(value, struct jb_netacct_counters);
} jb_counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct jb_netacct_settings);
} jb_settings SEC(".maps");

/* The counters of the packet's cgroup, made on its first packet; id 0 when the map is full. */
static __always_inline struct jb_netacct_counters *counters_of(__u64 id) {
    struct jb_netacct_counters *counters = bpf_map_lookup_elem(&jb_counters, &id);
    if (counters) return counters;
    struct jb_netacct_counters zero = {};
    bpf_map_update_elem(&jb_counters, &id, &zero, BPF_NOEXIST);
    counters = bpf_map_lookup_elem(&jb_counters, &id);
    if (counters) return counters;
    __u64 overflow = 0;
    return bpf_map_lookup_elem(&jb_counters, &overflow);
}

static __always_inline void add(struct jb_netacct_counters *counters, __u32 index, __u64 bytes, __u64 packets) {
    if (counters && index < JB_NETACCT_CLASSES) {
        __sync_fetch_and_add(&counters->bytes[index], bytes);
        __sync_fetch_and_add(&counters->packets[index], packets);
    }
}

/* 1: let the packet pass, 0: drop it (cgroup_skb's verdicts). NODE is a constant of each program: whether it
 * counts for the ancestors too. */
static __always_inline int account(struct __sk_buff *skb, int outgoing, int node) {
    struct jb_netacct_key key = {};
    __u32 length, header, protocol;
    if (skb->protocol == bpf_htons(ETH_P_IP)) {
        struct iphdr ip;
        if (bpf_skb_load_bytes(skb, 0, &ip, sizeof ip) != 0) return 1;
        key.prefixlen = 8 + 32;
        key.data[0] = JB_NETACCT_FAMILY_IPV4;
        __builtin_memcpy(&key.data[1], outgoing ? &ip.daddr : &ip.saddr, 4);
        length = bpf_ntohs(ip.tot_len);
        header = ip.ihl * 4;
        protocol = ip.protocol;
    } else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr ip;
        if (bpf_skb_load_bytes(skb, 0, &ip, sizeof ip) != 0) return 1;
        key.prefixlen = 8 + 128;
        key.data[0] = JB_NETACCT_FAMILY_IPV6;
        __builtin_memcpy(&key.data[1], outgoing ? &ip.daddr : &ip.saddr, 16);
        length = 40 + bpf_ntohs(ip.payload_len);
        header = 40;
        protocol = ip.nexthdr;
    } else {
        return 1;
    }
    __u32 *remote = bpf_map_lookup_elem(&jb_networks, &key);
    __u32 kind = remote ? *remote : JB_NETACCT_REMOTE_EXTERNAL;
    if (kind == JB_NETACCT_REMOTE_LOOPBACK) return 1;

    __u64 bytes = length, packets = 1;
    __u32 segments = skb->gso_segs;
    if (segments > 1) {
        /* A GSO super-packet (or a GRO-merged one on ingress) leaves as `segments` packets, each with the IP
         * and transport headers: the wire carries the payload once plus the headers `segments` times. Its IP
         * length field may be 0 (BIG TCP), so its length is the skb's, which starts at the IP header here. */
        __u32 transport = 0;
        if (protocol == IPPROTO_TCP) {
            __u8 offset;
            if (bpf_skb_load_bytes(skb, header + 12, &offset, 1) == 0) transport = (offset >> 4) * 4;
        } else if (protocol == IPPROTO_UDP) {
            transport = 8;
        }
        bytes = (__u64)skb->len + (__u64)(segments - 1) * (header + transport);
        packets = segments;
    } else if (length < header) {
        /* A jumbogram or an IPv4 length of 0: the skb's length is the packet's. */
        bytes = skb->len;
    }

    int external = kind != JB_NETACCT_REMOTE_INTERNAL;
    __u32 index = (outgoing ? 0 : 2) + (external ? 1 : 0);
    __u32 zero = 0;
    struct jb_netacct_settings *settings = bpf_map_lookup_elem(&jb_settings, &zero);
    if (node && settings) {
        /* The node service: the packet counts for its cgroup and for every ancestor down to first_level (the
         * cgroup the programs are attached to), so an entry holds its whole subtree, also after a descendant is
         * gone, and a reader needs one lookup. bpf_skb_ancestor_cgroup_id returns 0 past the socket's own level. */
        __u32 first = settings->first_level;
        for (__u32 level = 0; level < JB_NETACCT_MAX_LEVELS; level++) {
            __u64 id = bpf_skb_ancestor_cgroup_id(skb, (int)(first + level));
            if (id == 0) break;
            add(counters_of(id), index, bytes, packets);
        }
    } else {
        add(counters_of(bpf_skb_cgroup_id(skb)), index, bytes, packets);
    }
    if (external && settings && settings->deny_external) return 0;
    return 1;
}

SEC("cgroup_skb/egress")
int jb_netacct_egress(struct __sk_buff *skb) { return account(skb, 1, 1); }

SEC("cgroup_skb/ingress")
int jb_netacct_ingress(struct __sk_buff *skb) { return account(skb, 0, 1); }

SEC("cgroup_skb/egress")
int jb_job_egress(struct __sk_buff *skb) { return account(skb, 1, 0); }

SEC("cgroup_skb/ingress")
int jb_job_ingress(struct __sk_buff *skb) { return account(skb, 0, 0); }

char LICENSE[] SEC("license") = "GPL";
