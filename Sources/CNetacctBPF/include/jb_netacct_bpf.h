/*
 * jb_netacct_bpf.h: netacct's cgroup BPF accounting, shared by the BPF program (netacct.bpf.c, compiled for the
 * bpf target at build time) and its loader (jb_netacct_bpf.c, over the bpf() system call). The map layout is meant to outlive the
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
    __u32 first_level;   /* the node service's programs: the level of the cgroup they are attached to (root: 0),
                            the last ancestor they count for */
};

/* The deepest a cgroup may sit below the node service's cgroup and still have every level counted. */
#define JB_NETACCT_MAX_LEVELS 16

/* Entries of the maps. The counters map has one per cgroup of the job's subtree that sent or received. */
#define JB_NETACCT_MAX_CGROUPS 4096
/* A job's own counters map (netacct --backend bpf): its cgroups beyond this many count in the entry of id 0, still
 * the job's. Preallocated, so its size is paid at every job's start (4096 entries: 0.2 ms). */
#define JB_NETACCT_JOB_MAX_CGROUPS 256
/* The node service's counters map: every cgroup below NETWORK_ACCOUNTING_CGROUP that had traffic (gone ones are
 * dropped by the service's sweep). */
#define JB_NETACCT_NODE_MAX_CGROUPS 16384
#define JB_NETACCT_MAX_NETWORKS 4096

#ifndef JB_NETACCT_BPF_PROGRAM
#include <stddef.h>
#include <stdint.h>

/* A loaded instance of the program with its own maps (opaque). */
struct jb_netacct_bpf;

/*
 * Opens and loads the BPF object OBJECT (SIZE bytes, ELF) with DENY_EXTERNAL. NULL with errno on failure and
 * *STAGE naming the step: a static string, or for a program the verifier refused one with the verifier's last
 * complaint, the thread's until its next load. Nothing is attached yet, nothing is printed.
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

/* A map of the BPF object as the loader makes it: the loader reads no BTF, so the maps netacct.bpf.c defines
 * are mirrored in a table (a test compares it with the object's BTF). MAX_ENTRIES is the program's; the counters
 * map of a job and of the node service are made with JB_NETACCT_JOB_MAX_CGROUPS and JB_NETACCT_NODE_MAX_CGROUPS. */
struct jb_netacct_map_spec {
    const char *name;
    uint32_t type;
    uint32_t key_size;
    uint32_t value_size;
    uint32_t max_entries;
    uint32_t flags;
};

/* Row INDEX of the table, NULL past its end. */
const struct jb_netacct_map_spec *jb_netacct_bpf_map_spec(size_t index);

/*
 * Reads the BPF object OBJECT (SIZE bytes) as the loader would, without the kernel: 0 when it would be loaded
 * (its maps are the table's, its programs are there, every relocation is a map's), else -1 with errno (EINVAL) and
 * *PROBLEM saying why, as *STAGE of jb_netacct_bpf_load would.
 */
int jb_netacct_bpf_check_object(const void *object, size_t size, const char **problem);

/* Sums the counters of every cgroup of this instance into *TOTAL. 0 or -1 with errno. */
int jb_netacct_bpf_read(const struct jb_netacct_bpf *bpf, struct jb_netacct_counters *total);

/* Detaches (closes the links) and frees everything. */
void jb_netacct_bpf_close(struct jb_netacct_bpf *bpf);

/*
 * Sums the counters map with kernel id ID into *TOTAL, after checking it is one of netacct's (name and sizes).
 * 0, or -1 with errno (ENOENT: no such map; EINVAL: not netacct's).
 */
int jb_netacct_bpf_read_map_id(uint32_t id, struct jb_netacct_counters *total);

/*
 * The node service (netacct --node). Its state lives in bpffs under PIN_DIR (an existing directory), so that it
 * outlives the service: "counters" (the counters map, JB_NETACCT_NODE_MAX_CGROUPS entries), "egress" and
 * "ingress" (the bpf_links that keep the programs attached to the node's cgroup while no service runs).
 */

/* Loads the programs for the node: counters of every cgroup and of each ancestor down to FIRST_LEVEL, in the
 * counters map pinned in PIN_DIR (reused when it is there, so no count is lost; made and pinned when not).
 * NULL with errno and *STAGE on failure. */
struct jb_netacct_bpf *jb_netacct_bpf_load_node(const void *object, size_t size, const char *pin_dir, uint32_t first_level, const char **stage);

/*
 * Attaches the node's programs to the cgroup open at CGROUP_FD (id CGROUP_ID) through the links pinned in
 * PIN_DIR: a pinned link on that cgroup gets the new program in one step (BPF_LINK_UPDATE: no packet uncounted
 * or counted twice); a pinned link on another cgroup is detached; otherwise a new link is made and pinned. The
 * links stay attached when this process ends. 0 or -1 with errno and *STAGE.
 */
int jb_netacct_bpf_attach_node(struct jb_netacct_bpf *bpf, int cgroup_fd, uint64_t cgroup_id, const char *pin_dir, const char **stage);

/* The descriptor of the instance's counters map (owned by it). */
int jb_netacct_bpf_counters_fd(const struct jb_netacct_bpf *bpf);

/* Opens the counters map pinned in PIN_DIR, checked to be the node's (name and sizes). fd, or -1 with errno. */
int jb_netacct_node_open_counters(const char *pin_dir);

/* The counters of cgroup ID in the map FD: 0, or -1 with errno (ENOENT: no entry, i.e. no traffic yet). */
int jb_netacct_node_lookup(int fd, uint64_t id, struct jb_netacct_counters *value);

/* The key after *PREVIOUS (the first when PREVIOUS is NULL) in the map FD: 0, or -1 with errno (ENOENT: none). */
int jb_netacct_node_next_key(int fd, const uint64_t *previous, uint64_t *next);

/* Removes cgroup ID's entry from the map FD: 0, or -1 with errno. */
int jb_netacct_node_delete(int fd, uint64_t id);

/* --show of a job counted by the node's programs: cgroup ID's counters in the counters map with kernel id MAP_ID
 * (checked to be netacct's, as jb_netacct_bpf_read_map_id does); zero when it has no entry. 0 or -1 with errno. */
int jb_netacct_node_read_map_id(uint32_t map_id, uint64_t id, struct jb_netacct_counters *value);

/* The node service's programs as the kernel runs them through the links pinned in a pin directory: what a job's run
 * (netacct --backend bpf below the node's cgroup) needs to know before it counts in their map instead of loading
 * programs of its own. */
struct jb_netacct_node_programs {
    uint64_t cgroup_id;     /* the cgroup both links are attached to */
    uint32_t first_level;   /* the programs' settings */
    uint32_t deny_external;
    uint32_t counters_id;   /* the pinned counters map's kernel id: the map the programs count into */
    int counters_fd;        /* that map */
    int networks_fd;        /* the programs' networks map */
};

/*
 * Opens the node service's programs through what is pinned in PIN_DIR ("counters", "egress", "ingress": the
 * counters map opened by jb_netacct_node_open_counters, with its checks) and checks that they count: each link a
 * cgroup link of its direction, attached (a detached one has no cgroup), both on one cgroup, each running the node's
 * program of that direction (its name and type), whose maps are exactly the pinned counters map and a networks and a
 * settings map of netacct's table. 0 and *PROGRAMS (closed by jb_netacct_node_programs_close), or -1 with errno and
 * *REASON saying why they are not usable (a static string).
 */
int jb_netacct_node_programs_open(const char *pin_dir, struct jb_netacct_node_programs *programs, const char **reason);

/* Closes what jb_netacct_node_programs_open opened. */
void jb_netacct_node_programs_close(struct jb_netacct_node_programs *programs);

/* Reads the networks map FD (jb_netacct_node_programs's): up to CAPACITY keys and their kinds into KEYS and KINDS.
 * How many entries it has (more than CAPACITY: only CAPACITY were read), or -1 with errno. */
int jb_netacct_node_networks(int fd, struct jb_netacct_key *keys, uint32_t *kinds, int capacity);

/*
 * Removes what the node service left in PIN_DIR: detaches the pinned links (BPF_LINK_DETACH), unpins them and the
 * counters map, and removes PIN_DIR. *REMOVED counts the pins removed. 0 or -1 with errno and *STAGE; a missing
 * PIN_DIR is no error.
 */
int jb_netacct_node_remove_pins(const char *pin_dir, int *removed, const char **stage);
#endif

#endif
