/*
 * jb_bpf_object.h: reads a BPF object (an ELF relocatable file for the bpf target, as clang -target bpf writes it)
 * into what a BPF_PROG_LOAD needs: each program's instructions, found by its symbol, the references to maps that
 * its relocations name, and the license. Only glibc's <elf.h>; no BTF (cgroup_skb programs and plain maps need
 * none). Private to CNetacctBPF.
 *
 * Trust: the object is netacct's own, embedded at build time, but the reader is written as for any bytes: every
 * offset and size is checked against the buffer before it is read, and whatever it does not know how to load
 * (calls to non-inlined functions, global data, other relocations or program sections) is refused, not skipped.
 */
#ifndef JOBBOX_JB_BPF_OBJECT_H
#define JOBBOX_JB_BPF_OBJECT_H

#include <linux/bpf.h>
#include <stddef.h>
#include <stdint.h>

/* The most programs an object may hold. */
#define JB_BPF_OBJECT_MAX_PROGRAMS 16

/* A program of the object: a function symbol in an executable section whose name gives its type. */
struct jb_bpf_object_program {
    const char *name;                /* the symbol's name (in the object's bytes) */
    uint32_t type;                   /* BPF_PROG_TYPE_* */
    uint32_t expected_attach_type;   /* BPF_* attach type */
    size_t offset;                   /* of its first instruction in the object's bytes */
    size_t count;                    /* instructions */
};

/* An ld_imm64 instruction of a program that loads the address of a map: the loader puts the map's descriptor there. */
struct jb_bpf_object_map_reference {
    size_t program;
    size_t instruction;
    size_t map; /* index in the caller's list of map names */
};

struct jb_bpf_object {
    const uint8_t *bytes; /* the caller's, which must outlive the object */
    const char *license;
    struct jb_bpf_object_program programs[JB_BPF_OBJECT_MAX_PROGRAMS];
    size_t program_count;
    struct jb_bpf_object_map_reference *references; /* allocated */
    size_t reference_count;
};

/*
 * Reads the SIZE bytes at BYTES into OBJECT. MAPS (MAP_COUNT names) are the maps the caller makes: the object's
 * ".maps" section must define exactly these. 0, or -1 with errno (EINVAL: not an object this reader loads,
 * *PROBLEM saying why, a static string that completes "cannot ..."; ENOMEM). Nothing to free on failure.
 */
int jb_bpf_object_read(struct jb_bpf_object *object, const void *bytes, size_t size, const char *const *maps, size_t map_count,
                       const char **problem);

/* The index of the program named NAME, or -1. */
int jb_bpf_object_find_program(const struct jb_bpf_object *object, const char *name);

/* PROGRAM's instructions with each map reference set to the descriptor MAP_FDS[map]: allocated (the caller frees
 * them), or NULL with errno. */
struct bpf_insn *jb_bpf_object_instructions(const struct jb_bpf_object *object, size_t program, const int *map_fds);

void jb_bpf_object_free(struct jb_bpf_object *object);

#endif
