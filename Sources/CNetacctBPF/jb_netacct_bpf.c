/*
 * jb_netacct_bpf.c: loads netacct's cgroup_skb programs from the embedded object (jb_bpf_object.c reads it), makes
 * their maps, fills the networks map, attaches the programs to a job's cgroup through bpf_links and reads their
 * counters; and the node service's pinned map and links. Only the bpf() system call (jb_bpf_calls.c, and CLinux's
 * jb_bpf_prog_load for the programs), no libbpf: netacct links statically, and libbpf would bring libelf and zlib.
 * Swift sees only the opaque instance.
 */
#include "jb_netacct_bpf.h"

#include "jb_bpf_calls.h"
#include "jb_bpf_object.h"

#include <errno.h>
#include <jb_bpf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The maps of netacct.bpf.c, which defines them in BTF (its ".maps" section): the loader reads no BTF, so they are
 * made from this table, which must stay the object's. The reader refuses an object whose maps are not these names,
 * and a test compares each row with the object's BTF. The counters map's size is the job's or the node's. */
enum { NETWORKS, COUNTERS, SETTINGS, MAP_COUNT };
static const struct jb_netacct_map_spec map_specs[MAP_COUNT] = {
    [NETWORKS] = {"jb_networks", BPF_MAP_TYPE_LPM_TRIE, sizeof(struct jb_netacct_key), sizeof(__u32), JB_NETACCT_MAX_NETWORKS, BPF_F_NO_PREALLOC},
    [COUNTERS] = {"jb_counters", BPF_MAP_TYPE_HASH, sizeof(__u64), sizeof(struct jb_netacct_counters), JB_NETACCT_MAX_CGROUPS, 0},
    [SETTINGS] = {"jb_settings", BPF_MAP_TYPE_ARRAY, sizeof(__u32), sizeof(struct jb_netacct_settings), 1, 0},
};

const struct jb_netacct_map_spec *jb_netacct_bpf_map_spec(size_t index) { return index < MAP_COUNT ? &map_specs[index] : NULL; }

struct jb_netacct_bpf {
    int maps[MAP_COUNT];
    int programs[2]; /* the pair loaded, egress then ingress */
    int links[2];
    uint32_t counters_id;
};

/* The programs of a job (netacct --backend bpf) and of the node service (netacct --node), egress then ingress. */
static const char *const job_programs[2] = {"jb_job_egress", "jb_job_ingress"};
static const char *const node_programs[2] = {"jb_netacct_egress", "jb_netacct_ingress"};
static const uint32_t attach_types[2] = {BPF_CGROUP_INET_EGRESS, BPF_CGROUP_INET_INGRESS};

/* Reads OBJECT as the loader does: its maps must be the table's. */
static int read_object(struct jb_bpf_object *parsed, const void *object, size_t size, const char **problem) {
    const char *names[MAP_COUNT];
    for (int i = 0; i < MAP_COUNT; i++) names[i] = map_specs[i].name;
    return jb_bpf_object_read(parsed, object, size, names, MAP_COUNT, problem);
}

/* Closes FD if open, keeping errno. */
static void close_kept(int fd) {
    if (fd < 0) return;
    int saved = errno;
    close(fd);
    errno = saved;
}

int jb_netacct_bpf_check_object(const void *object, size_t size, const char **problem) {
    struct jb_bpf_object parsed;
    if (read_object(&parsed, object, size, problem) != 0) return -1;
    int result = 0;
    for (int i = 0; result == 0 && i < 2; i++) {
        if (jb_bpf_object_find_program(&parsed, job_programs[i]) < 0 || jb_bpf_object_find_program(&parsed, node_programs[i]) < 0) {
            *problem = "find the BPF programs";
            errno = ENOENT;
            result = -1;
        }
    }
    jb_bpf_object_free(&parsed);
    return result;
}

/* The pinned counters map at PATH, when it is there, named and shaped as SPEC says with MAX_ENTRIES (libbpf's
 * reuse of a pin checked the shape; the name as the readers check it, check_counters_map): its descriptor; -1 with errno ENOENT when nothing is pinned there, another errno (EINVAL: a map
 * of another shape, or not a map) on failure. */
static int reuse_pinned(const char *path, const struct jb_netacct_map_spec *spec, uint32_t max_entries) {
    int fd = jb_bpf_obj_get(path);
    if (fd < 0) return -1;
    struct bpf_map_info info;
    if (jb_bpf_obj_get_info(fd, &info, sizeof info) != 0) {
        close_kept(fd);
        return -1;
    }
    if (strcmp(info.name, spec->name) != 0 || info.type != spec->type || info.key_size != spec->key_size || info.value_size != spec->value_size ||
        info.max_entries != max_entries || info.map_flags != spec->flags) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    return fd;
}

/* Makes the maps of BPF; with PIN_PATH, the counters map is the one pinned there if there is one (*REUSED 1). */
static int make_maps(struct jb_netacct_bpf *bpf, const char *pin_path, int *reused, const char **stage) {
    *reused = 0;
    for (int i = 0; i < MAP_COUNT; i++) {
        const struct jb_netacct_map_spec *spec = &map_specs[i];
        uint32_t max_entries = spec->max_entries;
        if (i == COUNTERS) max_entries = pin_path ? JB_NETACCT_NODE_MAX_CGROUPS : JB_NETACCT_JOB_MAX_CGROUPS;
        if (i == COUNTERS && pin_path) {
            /* The counts of a previous service live on in its pinned map. */
            bpf->maps[i] = reuse_pinned(pin_path, spec, max_entries);
            if (bpf->maps[i] >= 0) {
                *reused = 1;
                continue;
            }
            if (errno != ENOENT) {
                *stage = "reuse the pinned counters map";
                return -1;
            }
        }
        bpf->maps[i] = jb_bpf_map_create(spec->type, spec->name, spec->key_size, spec->value_size, max_entries, spec->flags);
        if (bpf->maps[i] < 0) {
            *stage = "create the BPF maps";
            return -1;
        }
    }
    return 0;
}

/* Loads program NAME of OBJECT with the maps of BPF. On failure *STAGE names it and, when the verifier said why,
 * its last complaint (in a buffer of the thread's: netacct has one, the tests load in several at once). */
static int load_program(const struct jb_bpf_object *object, const struct jb_netacct_bpf *bpf, const char *name, const char **stage) {
    static _Thread_local char failure[256];
    int index = jb_bpf_object_find_program(object, name);
    if (index < 0) {
        *stage = "find the BPF programs";
        errno = ENOENT;
        return -1;
    }
    struct bpf_insn *instructions = jb_bpf_object_instructions(object, (size_t)index, bpf->maps);
    if (!instructions) {
        *stage = "load the BPF programs";
        return -1;
    }
    const struct jb_bpf_object_program *program = &object->programs[index];
    char complaint[JB_BPF_COMPLAINT_SIZE];
    int fd = jb_bpf_prog_load(program->type, program->expected_attach_type, name, instructions, program->count, object->license, complaint,
                              sizeof complaint);
    int saved = errno;
    free(instructions);
    if (fd < 0) {
        if (complaint[0])
            snprintf(failure, sizeof failure, "load the BPF program %s (verifier: %s)", name, complaint);
        else
            snprintf(failure, sizeof failure, "load the BPF program %s", name);
        *stage = failure;
    }
    errno = saved;
    return fd;
}

/* Loads the programs named in LOADED from OBJECT (the other pair is not loaded: the kernel verifies only what runs)
 * with SETTINGS; with PIN_DIR, the counters map is the node's: bigger, reused from its pin there or pinned there. */
static struct jb_netacct_bpf *load(const void *object, size_t size, const char *const loaded[2], struct jb_netacct_settings settings_value,
                                   const char *pin_dir, const char **stage) {
    struct jb_netacct_bpf *bpf = calloc(1, sizeof *bpf);
    if (!bpf) {
        *stage = "allocate";
        return NULL;
    }
    for (int i = 0; i < MAP_COUNT; i++) bpf->maps[i] = -1;
    bpf->programs[0] = bpf->programs[1] = bpf->links[0] = bpf->links[1] = -1;
    struct jb_bpf_object parsed;
    if (read_object(&parsed, object, size, stage) != 0) {
        int saved = errno;
        free(bpf);
        errno = saved;
        return NULL;
    }
    char path[PATH_MAX];
    int reused = 0; /* whether the counters map is the pinned one */
    if (pin_dir && snprintf(path, sizeof path, "%s/counters", pin_dir) >= (int)sizeof path) {
        *stage = "find the BPF maps";
        errno = ENAMETOOLONG;
        goto fail;
    }
    if (make_maps(bpf, pin_dir ? path : NULL, &reused, stage) != 0) goto fail;
    for (int i = 0; i < 2; i++) {
        bpf->programs[i] = load_program(&parsed, bpf, loaded[i], stage);
        if (bpf->programs[i] < 0) goto fail;
    }
    jb_bpf_object_free(&parsed);
    struct bpf_map_info info;
    if (jb_bpf_obj_get_info(bpf->maps[COUNTERS], &info, sizeof info) != 0) {
        *stage = "read the counters map's id";
        goto fail_loaded;
    }
    bpf->counters_id = info.id;
    /* Cgroup id 0 collects the packets of cgroups that no longer fit in the map. */
    uint64_t overflow = 0;
    struct jb_netacct_counters zero;
    memset(&zero, 0, sizeof zero);
    if (jb_bpf_map_update(bpf->maps[COUNTERS], &overflow, &zero, BPF_NOEXIST) != 0 && errno != EEXIST) { /* a reused map has it */
        *stage = "set up the counters map";
        goto fail_loaded;
    }
    uint32_t key = 0;
    if (jb_bpf_map_update(bpf->maps[SETTINGS], &key, &settings_value, BPF_ANY) != 0) {
        *stage = "write the settings map";
        goto fail_loaded;
    }
    /* Pinned last, when everything else worked: a failed start leaves no new pin behind. */
    if (pin_dir && !reused && jb_bpf_obj_pin(bpf->maps[COUNTERS], path) != 0) {
        *stage = "set up the pinned counters map";
        goto fail_loaded;
    }
    return bpf;
fail:
    jb_bpf_object_free(&parsed);
fail_loaded: {
    int saved = errno;
    jb_netacct_bpf_close(bpf);
    errno = saved;
}
    return NULL;
}

struct jb_netacct_bpf *jb_netacct_bpf_load(const void *object, size_t size, int deny_external, const char **stage) {
    struct jb_netacct_settings settings = {.deny_external = deny_external ? 1 : 0};
    return load(object, size, job_programs, settings, NULL, stage);
}

struct jb_netacct_bpf *jb_netacct_bpf_load_node(const void *object, size_t size, const char *pin_dir, uint32_t first_level, const char **stage) {
    struct jb_netacct_settings settings = {.first_level = first_level};
    return load(object, size, node_programs, settings, pin_dir, stage);
}

int jb_netacct_bpf_add_network(struct jb_netacct_bpf *bpf, int family, const uint8_t *address, int prefix_length, int kind) {
    int width = family == JB_NETACCT_FAMILY_IPV4 ? 4 : family == JB_NETACCT_FAMILY_IPV6 ? 16 : 0;
    if (width == 0 || prefix_length < 0 || prefix_length > width * 8) {
        errno = EINVAL;
        return -1;
    }
    struct jb_netacct_key key;
    memset(&key, 0, sizeof key);
    key.prefixlen = 8 + (uint32_t)prefix_length;
    key.data[0] = (uint8_t)family;
    memcpy(&key.data[1], address, (size_t)width);
    uint32_t value = (uint32_t)kind;
    return jb_bpf_map_update(bpf->maps[NETWORKS], &key, &value, BPF_ANY) == 0 ? 0 : -1;
}

int jb_netacct_bpf_attach(struct jb_netacct_bpf *bpf, int cgroup_fd, const char **stage) {
    for (int i = 0; i < 2; i++) {
        /* A link, as libbpf's bpf_program__attach_cgroup made: multi, and gone with the last descriptor. */
        bpf->links[i] = jb_bpf_link_create(bpf->programs[i], cgroup_fd, attach_types[i]);
        if (bpf->links[i] < 0) {
            *stage = i == 0 ? "attach the egress program" : "attach the ingress program";
            return -1;
        }
    }
    return 0;
}

uint32_t jb_netacct_bpf_counters_id(const struct jb_netacct_bpf *bpf) { return bpf->counters_id; }

/* Sums every entry of the counters map FD; keys are read one after the other (a cgroup added meanwhile is found
 * or not, never counted twice). */
static int sum_counters(int fd, struct jb_netacct_counters *total) {
    memset(total, 0, sizeof *total);
    uint64_t key = 0, next;
    const void *previous = NULL;
    for (;;) {
        if (jb_bpf_map_next_key(fd, previous, &next) != 0) return errno == ENOENT ? 0 : -1;
        struct jb_netacct_counters value;
        if (jb_bpf_map_lookup(fd, &next, &value) == 0) {
            for (int i = 0; i < JB_NETACCT_CLASSES; i++) {
                total->bytes[i] += value.bytes[i];
                total->packets[i] += value.packets[i];
            }
        } else if (errno != ENOENT) {
            return -1;
        }
        key = next;
        previous = &key;
    }
}

int jb_netacct_bpf_read(const struct jb_netacct_bpf *bpf, struct jb_netacct_counters *total) { return sum_counters(bpf->maps[COUNTERS], total); }

void jb_netacct_bpf_close(struct jb_netacct_bpf *bpf) {
    if (!bpf) return;
    /* A job's links detach with their last descriptor; the node's stay attached through their pins. */
    for (int i = 0; i < 2; i++) {
        close_kept(bpf->links[i]);
        close_kept(bpf->programs[i]);
    }
    for (int i = 0; i < MAP_COUNT; i++) close_kept(bpf->maps[i]);
    free(bpf);
}

/* 0 when the map open at FD is shaped like netacct's counters (name, type, sizes), else -1 with errno (EINVAL:
 * another map). An id or a pin is only a name: believe it only for such a map. */
static int check_counters_map(int fd) {
    struct bpf_map_info info;
    if (jb_bpf_obj_get_info(fd, &info, sizeof info) != 0) return -1;
    if (strcmp(info.name, "jb_counters") != 0 || info.type != BPF_MAP_TYPE_HASH || info.key_size != sizeof(uint64_t) ||
        info.value_size != sizeof(struct jb_netacct_counters)) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int jb_netacct_bpf_read_map_id(uint32_t id, struct jb_netacct_counters *total) {
    int fd = jb_bpf_map_get_fd_by_id(id);
    if (fd < 0) return -1;
    int result = check_counters_map(fd);
    if (result == 0) result = sum_counters(fd, total);
    close_kept(fd);
    return result;
}

int jb_netacct_bpf_counters_fd(const struct jb_netacct_bpf *bpf) { return bpf->maps[COUNTERS]; }

static const char *const node_links[2] = {"egress", "ingress"};

/* Detaches the link open at FD (it may be pinned elsewhere: detached, it holds nothing) and unlinks PATH. */
static int detach_pinned(int fd, const char *path) {
    if (jb_bpf_link_detach(fd) != 0 && errno != ENOLINK) return -1;
    return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Takes over the link pinned at PATH for program I of BPF when it is the previous service's on this cgroup (*TAKEN
 * 1); detaches and unpins a pinned link on another cgroup or of another kind; nothing pinned is no error. */
static int take_over_pinned(struct jb_netacct_bpf *bpf, int i, uint64_t cgroup_id, const char *path, int *taken, const char **stage) {
    *taken = 0;
    int fd = jb_bpf_obj_get(path);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        *stage = "open the pinned link";
        return -1;
    }
    struct bpf_link_info info;
    if (jb_bpf_obj_get_info(fd, &info, sizeof info) == 0 && info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == cgroup_id &&
        info.cgroup.attach_type == attach_types[i]) {
        /* The previous service's link: the new program takes over in one step. */
        if (jb_bpf_link_update(fd, bpf->programs[i]) != 0) {
            close_kept(fd);
            *stage = "replace the program of the pinned link";
            return -1;
        }
        bpf->links[i] = fd;
        *taken = 1;
        return 0;
    }
    /* A link on another cgroup (NETWORK_ACCOUNTING_CGROUP changed), or not ours: detached and replaced. */
    int result = detach_pinned(fd, path);
    close_kept(fd);
    if (result != 0) *stage = "detach the pinned link";
    return result;
}

int jb_netacct_bpf_attach_node(struct jb_netacct_bpf *bpf, int cgroup_fd, uint64_t cgroup_id, const char *pin_dir, const char **stage) {
    for (int i = 0; i < 2; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", pin_dir, node_links[i]) >= (int)sizeof path) {
            *stage = "name the pinned link";
            errno = ENAMETOOLONG;
            return -1;
        }
        int taken;
        if (take_over_pinned(bpf, i, cgroup_id, path, &taken, stage) != 0) return -1;
        if (taken) continue;
        int link = jb_bpf_link_create(bpf->programs[i], cgroup_fd, attach_types[i]);
        if (link < 0) {
            *stage = i == 0 ? "attach the egress program" : "attach the ingress program";
            return -1;
        }
        if (jb_bpf_obj_pin(link, path) != 0) {
            close_kept(link); /* its last descriptor: detached */
            *stage = "pin the link";
            return -1;
        }
        /* Closing the descriptor (jb_netacct_bpf_close) leaves the pinned link attached. */
        bpf->links[i] = link;
    }
    return 0;
}

int jb_netacct_node_open_counters(const char *pin_dir) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/counters", pin_dir) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = jb_bpf_obj_get(path);
    if (fd < 0) return -1;
    if (check_counters_map(fd) != 0) {
        close_kept(fd);
        return -1;
    }
    return fd;
}

int jb_netacct_node_lookup(int fd, uint64_t id, struct jb_netacct_counters *value) { return jb_bpf_map_lookup(fd, &id, value) == 0 ? 0 : -1; }

int jb_netacct_node_next_key(int fd, const uint64_t *previous, uint64_t *next) { return jb_bpf_map_next_key(fd, previous, next) == 0 ? 0 : -1; }

int jb_netacct_node_delete(int fd, uint64_t id) { return jb_bpf_map_delete(fd, &id) == 0 ? 0 : -1; }

int jb_netacct_node_read_map_id(uint32_t map_id, uint64_t id, struct jb_netacct_counters *value) {
    memset(value, 0, sizeof *value);
    int fd = jb_bpf_map_get_fd_by_id(map_id);
    if (fd < 0) return -1;
    int result = check_counters_map(fd);
    if (result == 0 && jb_bpf_map_lookup(fd, &id, value) != 0) {
        /* No entry: no traffic yet. */
        if (errno == ENOENT)
            memset(value, 0, sizeof *value);
        else
            result = -1;
    }
    close_kept(fd);
    return result;
}

/* Whether the map INFO describes is row ROW of the table (name, type, key and value sizes; the counters map's size
 * is the node's or a job's, the readers do not depend on it). */
static int is_table_map(const struct bpf_map_info *info, int row) {
    const struct jb_netacct_map_spec *spec = &map_specs[row];
    return strcmp(info->name, spec->name) == 0 && info->type == spec->type && info->key_size == spec->key_size &&
           info->value_size == spec->value_size;
}

/* Checks the link pinned at PATH as the node's link for direction I of PROGRAMS (its cgroup, when it is the first,
 * else the same); on success the networks and settings maps of its program are open in PROGRAMS (the first link's;
 * the second's must be the same maps) and *SETTINGS read. -1 with *REASON otherwise. */
static int check_node_link(const char *path, int i, struct jb_netacct_node_programs *programs, uint32_t map_ids[3], const char **reason) {
    int link = jb_bpf_obj_get(path);
    if (link < 0) {
        *reason = errno == ENOENT ? "the node service's links are not pinned" : "cannot open the node service's pinned link";
        return -1;
    }
    struct bpf_link_info info;
    int result = jb_bpf_obj_get_info(link, &info, sizeof info);
    close_kept(link);
    if (result != 0 || info.type != BPF_LINK_TYPE_CGROUP || info.cgroup.attach_type != attach_types[i]) {
        *reason = "a pinned link of the node service is not its cgroup link";
        errno = EINVAL;
        return -1;
    }
    /* BPF_LINK_DETACH (netacct --cleanup --stale) leaves the pin with no cgroup. */
    if (info.cgroup.cgroup_id == 0 || (i > 0 && info.cgroup.cgroup_id != programs->cgroup_id)) {
        *reason = info.cgroup.cgroup_id == 0 ? "the node service's pinned links are detached" : "the node service's links are on two cgroups";
        errno = ENOLINK;
        return -1;
    }
    programs->cgroup_id = info.cgroup.cgroup_id;
    int program = jb_bpf_prog_get_fd_by_id(info.prog_id);
    if (program < 0) {
        *reason = "cannot open the node service's program";
        return -1;
    }
    struct bpf_prog_info prog;
    uint32_t ids[4];
    char expected[BPF_OBJ_NAME_LEN];
    jb_bpf_name(expected, node_programs[i]);
    result = jb_bpf_prog_get_info_maps(program, &prog, ids, 4);
    close_kept(program);
    if (result != 0 || prog.type != BPF_PROG_TYPE_CGROUP_SKB || strcmp(prog.name, expected) != 0 || prog.nr_map_ids != 3) {
        *reason = "a pinned link of the node service runs another program than the node's";
        errno = EINVAL;
        return -1;
    }
    for (int m = 0; m < 3; m++) {
        if (i > 0) {
            /* The second program's maps are the first's (one load of the node's object): three ids a program holds
             * are distinct, so each being one of the first's three is the same set. */
            if (ids[m] != map_ids[0] && ids[m] != map_ids[1] && ids[m] != map_ids[2]) {
                *reason = "the node service's two programs count in different maps";
                errno = EINVAL;
                return -1;
            }
            continue;
        }
        /* Each of the three maps takes a role not taken yet, or the program is refused: so all three are found. */
        int fd = jb_bpf_map_get_fd_by_id(ids[m]);
        struct bpf_map_info map;
        if (fd < 0 || jb_bpf_obj_get_info(fd, &map, sizeof map) != 0) {
            close_kept(fd);
            *reason = "cannot open a map of the node service's program";
            return -1;
        }
        if (is_table_map(&map, COUNTERS) && map.id == programs->counters_id) {
            map_ids[COUNTERS] = map.id;
            close(fd);
        } else if (is_table_map(&map, NETWORKS) && programs->networks_fd < 0) {
            map_ids[NETWORKS] = map.id;
            programs->networks_fd = fd;
        } else if (is_table_map(&map, SETTINGS) && map_ids[SETTINGS] == 0) {
            map_ids[SETTINGS] = map.id;
            uint32_t key = 0;
            struct jb_netacct_settings settings;
            result = jb_bpf_map_lookup(fd, &key, &settings);
            close_kept(fd);
            if (result != 0) {
                *reason = "cannot read the node service's settings";
                return -1;
            }
            programs->first_level = settings.first_level;
            programs->deny_external = settings.deny_external;
        } else {
            close(fd);
            *reason = "the node service's program counts in another map than the pinned one";
            errno = EINVAL;
            return -1;
        }
    }
    return 0;
}

int jb_netacct_node_programs_open(const char *pin_dir, struct jb_netacct_node_programs *programs, const char **reason) {
    memset(programs, 0, sizeof *programs);
    programs->networks_fd = -1;
    programs->counters_fd = jb_netacct_node_open_counters(pin_dir);
    if (programs->counters_fd < 0) {
        *reason = errno == ENOENT ? "no node service's counters map is pinned" : "the pinned counters map is not the node service's";
        return -1;
    }
    struct bpf_map_info counters;
    if (jb_bpf_obj_get_info(programs->counters_fd, &counters, sizeof counters) != 0) {
        *reason = "cannot read the pinned counters map";
        goto fail;
    }
    programs->counters_id = counters.id;
    uint32_t map_ids[3] = {0, 0, 0};
    for (int i = 0; i < 2; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", pin_dir, node_links[i]) >= (int)sizeof path) {
            *reason = "the pinned link's name is too long";
            errno = ENAMETOOLONG;
            goto fail;
        }
        if (check_node_link(path, i, programs, map_ids, reason) != 0) goto fail;
    }
    return 0;
fail: {
    int saved = errno;
    jb_netacct_node_programs_close(programs);
    errno = saved;
}
    return -1;
}

void jb_netacct_node_programs_close(struct jb_netacct_node_programs *programs) {
    close_kept(programs->counters_fd);
    close_kept(programs->networks_fd);
    programs->counters_fd = programs->networks_fd = -1;
}

int jb_netacct_node_networks(int fd, struct jb_netacct_key *keys, uint32_t *kinds, int capacity) {
    int count = 0;
    struct jb_netacct_key key, next;
    const void *previous = NULL;
    for (;;) {
        if (jb_bpf_map_next_key(fd, previous, &next) != 0) return errno == ENOENT ? count : -1;
        uint32_t kind;
        if (jb_bpf_map_lookup(fd, &next, &kind) == 0) {
            if (count < capacity) {
                keys[count] = next;
                kinds[count] = kind;
            }
            count++;
        } else if (errno != ENOENT) {
            return -1;
        }
        key = next;
        previous = &key;
    }
}

int jb_netacct_node_remove_pins(const char *pin_dir, int *removed, const char **stage) {
    *removed = 0;
    for (int i = 0; i < 3; i++) {
        const char *name = i < 2 ? node_links[i] : "counters";
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", pin_dir, name) >= (int)sizeof path) {
            *stage = "name a pin";
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = jb_bpf_obj_get(path);
        if (fd < 0) {
            if (errno == ENOENT) continue;
            *stage = "open a pin";
            return -1;
        }
        int result = 0;
        if (i < 2) {
            struct bpf_link_info info;
            /* Only a cgroup link is detached: a pin of another kind here is only unpinned. */
            if (jb_bpf_obj_get_info(fd, &info, sizeof info) == 0 && info.type == BPF_LINK_TYPE_CGROUP)
                result = detach_pinned(fd, path);
            else
                result = unlink(path);
        } else {
            result = unlink(path);
        }
        int saved = errno;
        close(fd);
        if (result != 0 && saved != ENOENT) {
            *stage = i < 2 ? "detach a pinned link" : "unpin the counters map";
            errno = saved;
            return -1;
        }
        (*removed)++;
    }
    if (rmdir(pin_dir) != 0 && errno != ENOENT) {
        *stage = "remove the pin directory";
        return -1;
    }
    return 0;
}
