/*
 * jb_netacct_bpf.h: netacct's cgroup BPF accounting, shared by the BPF program (netacct.bpf.c, compiled for the
 * bpf target at build time) and its libbpf loader (jb_netacct_bpf.c). The map layout is meant to outlive the
 * per-job use: counters are keyed by the cgroup id of the packet's socket, so a program attached higher up (a
 * node service) counts every cgroup below it in one map and a reader sums a job's subtree.
 */
#ifndef JOBBOX_JB_NETACCT_BPF_H
#define JOBBOX_JB_NETACCT_BPF_H

#include <linux/types.h>

/* What a remote address is, the value of the networks map. No entry: external. */
#define JB_NETACCT_REMOTE_EXTERNAL 0
#define JB_NETACCT_REMOTE_INTERNAL 1
#define JB_NETACCT_REMOTE_LOOPBACK 2 /* not the network: not counted, never dropped */

/* The four classes, in the order of the counters arrays. */
#define JB_NETACCT_OUTGOING_INTERNAL 0
#define JB_NETACCT_OUTGOING_EXTERNAL 1
#define JB_NETACCT_INCOMING_INTERNAL 2
#define JB_NETACCT_INCOMING_EXTERNAL 3
#define JB_NETACCT_CLASSES 4

/* Address families in byte 0 of a networks key, so one longest-prefix lookup serves IPv4 and IPv6. */
#define JB_NETACCT_FAMILY_IPV4 4
#define JB_NETACCT_FAMILY_IPV6 6

/* Key of the networks map (BPF_MAP_TYPE_LPM_TRIE): prefixlen counts the family byte (8) plus the network's
 * prefix length; data[0] is the family, then the address in network order (4 or 16 bytes), then zeros. */
struct jb_netacct_key {
    __u32 prefixlen;
    __u8 data[20];
};

/* Value of the counters map (hash, key: the socket's cgroup id, a __u64; id 0 collects what did not fit).
 * bytes are IP bytes as on the wire (IPv4 total length, or 40 + IPv6 payload length, per segment after GSO),
 * packets are wire packets (a GSO super-packet counts as its segments). */
struct jb_netacct_counters {
    __u64 bytes[JB_NETACCT_CLASSES];
    __u64 packets[JB_NETACCT_CLASSES];
};

/* Value of the settings map (array, one entry). */
struct jb_netacct_settings {
    __u32 deny_external; /* drop external packets (after counting them) */
};

/* Entries of the maps. The counters map has one per cgroup of the job's subtree that sent or received. */
#define JB_NETACCT_MAX_CGROUPS 4096
#define JB_NETACCT_MAX_NETWORKS 4096

#ifndef JB_NETACCT_BPF_PROGRAM
#include <stddef.h>
#include <stdint.h>

/* A loaded instance of the program with its own maps (opaque). */
struct jb_netacct_bpf;

/*
 * Opens and loads the BPF object OBJECT (SIZE bytes, ELF) with DENY_EXTERNAL. NULL with errno on failure and
 * *STAGE naming the step (a static string). Nothing is attached yet; libbpf prints nothing.
 */
struct jb_netacct_bpf *jb_netacct_bpf_load(const void *object, size_t size, int deny_external, const char **stage);

/* Adds a network: FAMILY 4 or 6, ADDRESS in network order (4 or 16 bytes), PREFIX_LENGTH, KIND
 * (JB_NETACCT_REMOTE_*). 0 or -1 with errno. */
int jb_netacct_bpf_add_network(struct jb_netacct_bpf *bpf, int family, const uint8_t *address, int prefix_length, int kind);

/*
 * Attaches the ingress and egress programs to the cgroup (v2) open at CGROUP_FD, through bpf_links (multi:
 * other programs there keep running). The links live as long as the descriptors: when the process dies, the
 * kernel detaches them, so a killed netacct leaves no program behind. 0 or -1 with errno and *STAGE.
 */
int jb_netacct_bpf_attach(struct jb_netacct_bpf *bpf, int cgroup_fd, const char **stage);

/* The counters map's kernel id (recorded so --show can find the map of a running job). */
uint32_t jb_netacct_bpf_counters_id(const struct jb_netacct_bpf *bpf);

/* Sums the counters of every cgroup of this instance into *TOTAL. 0 or -1 with errno. */
int jb_netacct_bpf_read(const struct jb_netacct_bpf *bpf, struct jb_netacct_counters *total);

/* Detaches (destroys the links) and frees everything. */
void jb_netacct_bpf_close(struct jb_netacct_bpf *bpf);

/*
 * Sums the counters map with kernel id ID into *TOTAL, after checking it is one of netacct's (name and sizes).
 * 0, or -1 with errno (ENOENT: no such map; EINVAL: not netacct's).
 */
int jb_netacct_bpf_read_map_id(uint32_t id, struct jb_netacct_counters *total);
#endif

#endif
