/*
 * jb_bpf_calls.h: the bpf() commands netacct's loader uses, one function each over CLinux's jb_bpf (the calls
 * libbpf made for it, without libbpf); programs it loads with CLinux's jb_bpf_prog_load, which the device fence
 * loads with too. Every function returns what the kernel returned (a descriptor or 0), or -1 with errno. Private
 * to CNetacctBPF.
 */
#ifndef JOBBOX_JB_BPF_CALLS_H
#define JOBBOX_JB_BPF_CALLS_H

#include <linux/bpf.h>
#include <stddef.h>
#include <stdint.h>

/* BPF_MAP_CREATE: a map named NAME (shortened as jb_bpf_name does), no BTF. */
int jb_bpf_map_create(uint32_t type, const char *name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, uint32_t flags);

/* BPF_LINK_CREATE: PROGRAM attached to the cgroup TARGET as ATTACH_TYPE, through a link (multi: the cgroup's other
 * programs keep running). */
int jb_bpf_link_create(int program, int target, uint32_t attach_type);

/* BPF_LINK_UPDATE: the link runs PROGRAM from now on (no moment without a program). */
int jb_bpf_link_update(int link, int program);

/* BPF_LINK_DETACH: the link lets go of its program and cgroup, though it stays open and pinned. */
int jb_bpf_link_detach(int link);

/* BPF_OBJ_PIN and BPF_OBJ_GET: a map or link at PATH in bpffs. */
int jb_bpf_obj_pin(int fd, const char *path);
int jb_bpf_obj_get(const char *path);

/* BPF_OBJ_GET_INFO_BY_FD: INFO (a struct bpf_map_info, bpf_prog_info or bpf_link_info, zeroed here) of FD. */
int jb_bpf_obj_get_info(int fd, void *info, uint32_t size);

/* BPF_MAP_GET_FD_BY_ID and BPF_PROG_GET_FD_BY_ID. */
int jb_bpf_map_get_fd_by_id(uint32_t id);
int jb_bpf_prog_get_fd_by_id(uint32_t id);

/* BPF_OBJ_GET_INFO_BY_FD of the program FD with the ids of its maps: *INFO (zeroed here) and up to CAPACITY ids in
 * MAP_IDS; INFO->nr_map_ids says how many it has (more than CAPACITY: only CAPACITY were written). */
int jb_bpf_prog_get_info_maps(int fd, struct bpf_prog_info *info, uint32_t *map_ids, uint32_t capacity);

/* BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM, BPF_MAP_GET_NEXT_KEY (KEY NULL: the first). */
int jb_bpf_map_lookup(int map, const void *key, void *value);
int jb_bpf_map_update(int map, const void *key, const void *value, uint64_t flags);
int jb_bpf_map_delete(int map, const void *key);
int jb_bpf_map_next_key(int map, const void *key, void *next);

#endif
