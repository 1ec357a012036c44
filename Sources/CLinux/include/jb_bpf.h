/*
 * jb_bpf.h: the bpf() system call, the one way jobbox talks to the kernel's BPF, and BPF_PROG_LOAD over it, the
 * one program loader: the device fence (jb_devices.c) and netacct's cgroup_skb loader (CNetacctBPF) both load
 * their programs through it, neither links libbpf.
 */
#ifndef JOBBOX_JB_BPF_H
#define JOBBOX_JB_BPF_H

#include <stddef.h>
#include <stdint.h>

union bpf_attr;
struct bpf_insn;

/*
 * bpf(COMMAND, ATTR, sizeof *ATTR) with the whole union of this build's <linux/bpf.h>: an older kernel accepts it
 * as long as the fields it does not know are zero, so ATTR must be zeroed before its fields are set. What the
 * kernel returns (a descriptor, 0, ...), or -1 with errno.
 */
int jb_bpf(int command, union bpf_attr *attr);

/* NAME as a kernel object's name at DESTINATION (BPF_OBJ_NAME_LEN bytes): shortened to what fits with its NUL,
 * as libbpf did. */
void jb_bpf_name(char *destination, const char *name);

/* Room enough for the verifier's last complaint: one line of its log, a register or an instruction and why. */
#define JB_BPF_COMPLAINT_SIZE 160

/*
 * BPF_PROG_LOAD of COUNT instructions of TYPE, for EXPECTED_ATTACH_TYPE, named NAME (shortened as jb_bpf_name
 * does), licensed LICENSE: the program's descriptor, or -1 with errno. Loaded without a verifier log first (the
 * log costs time at every job's start); on failure loaded again with one, and its last line that says why (not
 * the summary of what the verifier processed) goes to COMPLAINT (COMPLAINT_SIZE bytes, more than 0, cut to fit;
 * "" when the verifier said nothing, as when the caller may not load programs at all). errno is the first
 * attempt's.
 */
int jb_bpf_prog_load(uint32_t type, uint32_t expected_attach_type, const char *name, const struct bpf_insn *insns, size_t count,
                     const char *license, char *complaint, size_t complaint_size);

#endif
