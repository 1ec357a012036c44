/*
 * jb_bpf_calls.c: the bpf() commands of netacct's loader (see jb_bpf_calls.h).
 */
#include "jb_bpf_calls.h"

#include <jb_bpf.h>
#include <string.h>

static uint64_t pointer(const void *p) { return (uint64_t)(uintptr_t)p; }

int jb_bpf_map_create(uint32_t type, const char *name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, uint32_t flags) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = type;
    attr.key_size = key_size;
    attr.value_size = value_size;
    attr.max_entries = max_entries;
    attr.map_flags = flags;
    jb_bpf_name(attr.map_name, name);
    return jb_bpf(BPF_MAP_CREATE, &attr);
}

int jb_bpf_link_create(int program, int target, uint32_t attach_type) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.link_create.prog_fd = (uint32_t)program;
    attr.link_create.target_fd = (uint32_t)target;
    attr.link_create.attach_type = attach_type;
    return jb_bpf(BPF_LINK_CREATE, &attr);
}

int jb_bpf_link_update(int link, int program) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.link_update.link_fd = (uint32_t)link;
    attr.link_update.new_prog_fd = (uint32_t)program;
    return jb_bpf(BPF_LINK_UPDATE, &attr);
}

int jb_bpf_link_detach(int link) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.link_detach.link_fd = (uint32_t)link;
    return jb_bpf(BPF_LINK_DETACH, &attr);
}

int jb_bpf_obj_pin(int fd, const char *path) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.pathname = pointer(path);
    attr.bpf_fd = (uint32_t)fd;
    return jb_bpf(BPF_OBJ_PIN, &attr);
}

int jb_bpf_obj_get(const char *path) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.pathname = pointer(path);
    return jb_bpf(BPF_OBJ_GET, &attr);
}

int jb_bpf_obj_get_info(int fd, void *info, uint32_t size) {
    memset(info, 0, size);
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.info.bpf_fd = (uint32_t)fd;
    attr.info.info_len = size;
    attr.info.info = pointer(info);
    return jb_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr);
}

int jb_bpf_map_get_fd_by_id(uint32_t id) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_id = id;
    return jb_bpf(BPF_MAP_GET_FD_BY_ID, &attr);
}

int jb_bpf_prog_get_fd_by_id(uint32_t id) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_id = id;
    return jb_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
}

int jb_bpf_prog_get_info_maps(int fd, struct bpf_prog_info *info, uint32_t *map_ids, uint32_t capacity) {
    memset(info, 0, sizeof *info);
    info->nr_map_ids = capacity;
    info->map_ids = pointer(map_ids);
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.info.bpf_fd = (uint32_t)fd;
    attr.info.info_len = sizeof *info;
    attr.info.info = pointer(info);
    return jb_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr);
}

/* The four element commands share one layout: map, key, value or next key, flags. */
static int element(int command, int map, const void *key, const void *value, uint64_t flags) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_fd = (uint32_t)map;
    attr.key = pointer(key);
    attr.value = pointer(value);
    attr.flags = flags;
    return jb_bpf(command, &attr);
}

int jb_bpf_map_lookup(int map, const void *key, void *value) { return element(BPF_MAP_LOOKUP_ELEM, map, key, value, 0); }

int jb_bpf_map_update(int map, const void *key, const void *value, uint64_t flags) {
    return element(BPF_MAP_UPDATE_ELEM, map, key, value, flags);
}

int jb_bpf_map_delete(int map, const void *key) { return element(BPF_MAP_DELETE_ELEM, map, key, NULL, 0); }

int jb_bpf_map_next_key(int map, const void *key, void *next) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_fd = (uint32_t)map;
    attr.key = pointer(key);
    attr.next_key = pointer(next);
    return jb_bpf(BPF_MAP_GET_NEXT_KEY, &attr);
}
