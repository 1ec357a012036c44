/*
 * jb_netacct_bpf.c: loads netacct's cgroup_skb programs with libbpf, fills their networks map, attaches them to
 * a job's cgroup through bpf_links and reads their counters. Swift never touches libbpf's structures.
 */
#include "jb_netacct_bpf.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct jb_netacct_bpf {
    struct bpf_object *object;
    struct bpf_link *links[2];
    int counters_fd;
    int networks_fd;
    uint32_t counters_id;
};

/* libbpf's messages would go to stderr in the middle of the job's; netacct reports failures itself. */
static int quiet(enum libbpf_print_level level, const char *format, va_list args) {
    (void)level;
    (void)format;
    (void)args;
    return 0;
}

/* libbpf returns negative errnos and, since 1.0, also sets errno; make sure errno is the one returned. */
static int fail_with(int result) {
    errno = result < 0 ? -result : (errno ? errno : EINVAL);
    return -1;
}

/* The programs of a job (netacct --backend bpf) and of the node service (netacct --node), egress then ingress. */
static const char *const job_programs[2] = {"jb_job_egress", "jb_job_ingress"};
static const char *const node_programs[2] = {"jb_netacct_egress", "jb_netacct_ingress"};

/* Opens OBJECT and loads the programs named in LOADED (the other pair is not loaded: the kernel verifies only
 * what runs) with SETTINGS; with PIN_DIR, the counters map is the node's: bigger, and pinned there. */
static struct jb_netacct_bpf *load(const void *object, size_t size, const char *const loaded[2], struct jb_netacct_settings settings_value, const char *pin_dir, const char **stage) {
    libbpf_set_print(quiet);
    struct jb_netacct_bpf *bpf = calloc(1, sizeof *bpf);
    if (!bpf) {
        *stage = "allocate";
        return NULL;
    }
    bpf->counters_fd = bpf->networks_fd = -1;
    LIBBPF_OPTS(bpf_object_open_opts, options, .object_name = "jb_netacct");
    bpf->object = bpf_object__open_mem(object, size, &options);
    if (!bpf->object) {
        int saved = errno;
        free(bpf);
        *stage = "open the BPF object";
        errno = saved;
        return NULL;
    }
    int result = 0;
    struct bpf_program *program;
    bpf_object__for_each_program(program, bpf->object) {
        const char *name = bpf_program__name(program);
        int wanted = strcmp(name, loaded[0]) == 0 || strcmp(name, loaded[1]) == 0;
        result = bpf_program__set_autoload(program, wanted);
        if (result != 0) {
            *stage = "choose the BPF programs";
            goto fail;
        }
    }
    /* The maps are the object's from its opening on; sized (and pinned) here, created by the load. */
    struct bpf_map *counters = bpf_object__find_map_by_name(bpf->object, "jb_counters");
    struct bpf_map *networks = bpf_object__find_map_by_name(bpf->object, "jb_networks");
    struct bpf_map *settings = bpf_object__find_map_by_name(bpf->object, "jb_settings");
    if (!counters || !networks || !settings) {
        *stage = "find the BPF maps";
        result = -ENOENT;
        goto fail;
    }
    if (!pin_dir) {
        result = bpf_map__set_max_entries(counters, JB_NETACCT_JOB_MAX_CGROUPS);
        if (result != 0) {
            *stage = "size the counters map";
            goto fail;
        }
    } else {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/counters", pin_dir) >= (int)sizeof path) {
            *stage = "find the BPF maps";
            result = -ENAMETOOLONG;
            goto fail;
        }
        /* libbpf reuses a compatible map pinned there (the counts of a previous service) or pins the new one. */
        result = bpf_map__set_max_entries(counters, JB_NETACCT_NODE_MAX_CGROUPS);
        if (result == 0) result = bpf_map__set_pin_path(counters, path);
        if (result != 0) {
            *stage = "set up the pinned counters map";
            goto fail;
        }
    }
    result = bpf_object__load(bpf->object);
    if (result != 0) {
        *stage = "load the BPF programs";
        goto fail;
    }
    bpf->counters_fd = bpf_map__fd(counters);
    bpf->networks_fd = bpf_map__fd(networks);
    struct bpf_map_info info;
    uint32_t info_size = sizeof info;
    memset(&info, 0, sizeof info);
    result = bpf_obj_get_info_by_fd(bpf->counters_fd, &info, &info_size);
    if (result != 0) {
        *stage = "read the counters map's id";
        goto fail;
    }
    bpf->counters_id = info.id;
    /* Cgroup id 0 collects the packets of cgroups that no longer fit in the map. */
    uint64_t overflow = 0;
    struct jb_netacct_counters zero;
    memset(&zero, 0, sizeof zero);
    result = bpf_map_update_elem(bpf->counters_fd, &overflow, &zero, BPF_NOEXIST);
    if (result != 0 && errno == EEXIST) result = 0; /* a reused map has it */
    if (result != 0) {
        *stage = "set up the counters map";
        goto fail;
    }
    uint32_t key = 0;
    result = bpf_map_update_elem(bpf_map__fd(settings), &key, &settings_value, BPF_ANY);
    if (result != 0) {
        *stage = "write the settings map";
        goto fail;
    }
    return bpf;
fail:
    fail_with(result);
    {
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
    int result = bpf_map_update_elem(bpf->networks_fd, &key, &value, BPF_ANY);
    return result == 0 ? 0 : fail_with(result);
}

int jb_netacct_bpf_attach(struct jb_netacct_bpf *bpf, int cgroup_fd, const char **stage) {
    for (int i = 0; i < 2; i++) {
        struct bpf_program *program = bpf_object__find_program_by_name(bpf->object, job_programs[i]);
        if (!program) {
            *stage = "find the BPF programs";
            errno = ENOENT;
            return -1;
        }
        struct bpf_link *link = bpf_program__attach_cgroup(program, cgroup_fd);
        if (!link) {
            *stage = i == 0 ? "attach the egress program" : "attach the ingress program";
            return fail_with(-errno);
        }
        bpf->links[i] = link;
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
        int result = bpf_map_get_next_key(fd, previous, &next);
        if (result != 0) {
            if (errno == ENOENT) return 0;
            return fail_with(result);
        }
        struct jb_netacct_counters value;
        if (bpf_map_lookup_elem(fd, &next, &value) == 0) {
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

int jb_netacct_bpf_read(const struct jb_netacct_bpf *bpf, struct jb_netacct_counters *total) {
    return sum_counters(bpf->counters_fd, total);
}

void jb_netacct_bpf_close(struct jb_netacct_bpf *bpf) {
    if (!bpf) return;
    for (int i = 0; i < 2; i++)
        if (bpf->links[i]) bpf_link__destroy(bpf->links[i]);
    bpf_object__close(bpf->object);
    free(bpf);
}

/* 0 when the map open at FD is shaped like netacct's counters (name, type, sizes), else -1 with errno (EINVAL:
 * another map). An id or a pin is only a name: believe it only for such a map. */
static int check_counters_map(int fd) {
    struct bpf_map_info info;
    uint32_t info_size = sizeof info;
    memset(&info, 0, sizeof info);
    if (bpf_obj_get_info_by_fd(fd, &info, &info_size) != 0) return -1;
    if (strcmp(info.name, "jb_counters") != 0 || info.type != BPF_MAP_TYPE_HASH || info.key_size != sizeof(uint64_t) ||
        info.value_size != sizeof(struct jb_netacct_counters)) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int jb_netacct_bpf_read_map_id(uint32_t id, struct jb_netacct_counters *total) {
    int fd = bpf_map_get_fd_by_id(id);
    if (fd < 0) return fail_with(fd);
    int result = check_counters_map(fd);
    if (result == 0) result = sum_counters(fd, total);
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}

int jb_netacct_bpf_counters_fd(const struct jb_netacct_bpf *bpf) { return bpf->counters_fd; }

static const char *const node_links[2] = {"egress", "ingress"};

/* Detaches the link open at FD (it may be pinned elsewhere: detached, it holds nothing) and unlinks PATH. */
static int detach_pinned(int fd, const char *path) {
    int result = bpf_link_detach(fd);
    if (result != 0 && errno != ENOLINK) return fail_with(result);
    return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

int jb_netacct_bpf_attach_node(struct jb_netacct_bpf *bpf, int cgroup_fd, uint64_t cgroup_id, const char *pin_dir, const char **stage) {
    static const enum bpf_attach_type types[2] = {BPF_CGROUP_INET_EGRESS, BPF_CGROUP_INET_INGRESS};
    for (int i = 0; i < 2; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", pin_dir, node_links[i]) >= (int)sizeof path) {
            *stage = "name the pinned link";
            errno = ENAMETOOLONG;
            return -1;
        }
        struct bpf_program *program = bpf_object__find_program_by_name(bpf->object, node_programs[i]);
        if (!program) {
            *stage = "find the BPF programs";
            errno = ENOENT;
            return -1;
        }
        struct bpf_link *link = bpf_link__open(path);
        if (link) {
            struct bpf_link_info info;
            uint32_t info_size = sizeof info;
            memset(&info, 0, sizeof info);
            int result = bpf_obj_get_info_by_fd(bpf_link__fd(link), &info, &info_size);
            if (result == 0 && info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == cgroup_id &&
                info.cgroup.attach_type == (uint32_t)types[i]) {
                /* The previous service's link: the new program takes over in one step. */
                result = bpf_link__update_program(link, program);
                if (result != 0) {
                    int saved = -result;
                    bpf_link__disconnect(link);
                    bpf_link__destroy(link);
                    *stage = "replace the program of the pinned link";
                    errno = saved;
                    return -1;
                }
                bpf_link__disconnect(link);
                bpf->links[i] = link;
                continue;
            }
            /* A link on another cgroup (NETWORK_ACCOUNTING_CGROUP changed), or not ours: detached and replaced. */
            result = detach_pinned(bpf_link__fd(link), path);
            int saved = errno;
            bpf_link__disconnect(link);
            bpf_link__destroy(link);
            if (result != 0) {
                *stage = "detach the pinned link";
                errno = saved;
                return -1;
            }
        } else if (errno != ENOENT) {
            *stage = "open the pinned link";
            return -1;
        }
        link = bpf_program__attach_cgroup(program, cgroup_fd);
        if (!link) {
            *stage = i == 0 ? "attach the egress program" : "attach the ingress program";
            return fail_with(-errno);
        }
        int result = bpf_link__pin(link, path);
        if (result != 0) {
            int saved = -result;
            bpf_link__destroy(link);
            *stage = "pin the link";
            errno = saved;
            return -1;
        }
        /* Closing the descriptor leaves the pinned link attached. */
        bpf_link__disconnect(link);
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
    int fd = bpf_obj_get(path);
    if (fd < 0) return fail_with(fd);
    if (check_counters_map(fd) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int jb_netacct_node_lookup(int fd, uint64_t id, struct jb_netacct_counters *value) {
    int result = bpf_map_lookup_elem(fd, &id, value);
    return result == 0 ? 0 : fail_with(result);
}

int jb_netacct_node_next_key(int fd, const uint64_t *previous, uint64_t *next) {
    int result = bpf_map_get_next_key(fd, previous, next);
    return result == 0 ? 0 : fail_with(result);
}

int jb_netacct_node_delete(int fd, uint64_t id) {
    int result = bpf_map_delete_elem(fd, &id);
    return result == 0 ? 0 : fail_with(result);
}

int jb_netacct_node_remove_pins(const char *pin_dir, int *removed, const char **stage) {
    libbpf_set_print(quiet);
    *removed = 0;
    for (int i = 0; i < 3; i++) {
        const char *name = i < 2 ? node_links[i] : "counters";
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", pin_dir, name) >= (int)sizeof path) {
            *stage = "name a pin";
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = bpf_obj_get(path);
        if (fd < 0) {
            if (errno == ENOENT) continue;
            *stage = "open a pin";
            return -1;
        }
        int result = 0;
        if (i < 2) {
            struct bpf_link_info info;
            uint32_t info_size = sizeof info;
            memset(&info, 0, sizeof info);
            /* Only a cgroup link is detached: a pin of another kind here is only unpinned. */
            if (bpf_obj_get_info_by_fd(fd, &info, &info_size) == 0 && info.type == BPF_LINK_TYPE_CGROUP)
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
