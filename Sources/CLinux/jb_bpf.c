/*
 * jb_bpf.c: the bpf() system call (see jb_bpf.h); glibc has no wrapper for it.
 */
#include "jb_bpf.h"

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

int jb_bpf(int command, union bpf_attr *attr)
{
    return (int)syscall(__NR_bpf, command, attr, sizeof(*attr));
}
