/*
 * jb_bpf.h: the bpf() system call, the one way jobbox talks to the kernel's BPF: the device fence (jb_devices.c)
 * and netacct's cgroup_skb loader (CNetacctBPF) both call it, neither links libbpf.
 */
#ifndef JOBBOX_JB_BPF_H
#define JOBBOX_JB_BPF_H

union bpf_attr;

/*
 * bpf(COMMAND, ATTR, sizeof *ATTR) with the whole union of this build's <linux/bpf.h>: an older kernel accepts it
 * as long as the fields it does not know are zero, so ATTR must be zeroed before its fields are set. What the
 * kernel returns (a descriptor, 0, ...), or -1 with errno.
 */
int jb_bpf(int command, union bpf_attr *attr);

#endif
