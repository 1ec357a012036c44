/*
 * jb_bpf.c: the bpf() system call, which glibc does not wrap, and the program loader over it (see jb_bpf.h).
 */
#include "jb_bpf.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The verifier's log of a refused program. At level 1 it holds only the refused path, which for netacct's node
 * programs may pass 64 KiB; one beyond this keeps its end on kernels from 6.4, its start on older ones. */
#define LOG_SIZE (1024 * 1024)

int jb_bpf(int command, union bpf_attr *attr)
{
    return (int)syscall(__NR_bpf, command, attr, sizeof(*attr));
}

void jb_bpf_name(char *destination, const char *name)
{
    size_t length = strnlen(name, BPF_OBJ_NAME_LEN - 1);
    memcpy(destination, name, length);
    destination[length] = '\0';
}

/* The last line of LOG (cut into lines in place, strtok_r: programs load in several threads at once) into OUT,
 * leaving out the summary the log ends with ("processed ... insns", "verification time ..."), which says nothing
 * of why. */
static void last_complaint(char *log, char *out, size_t out_size)
{
    char *rest = NULL;
    for (char *line = strtok_r(log, "\n", &rest); line; line = strtok_r(NULL, "\n", &rest))
        if (strncmp(line, "processed ", 10) != 0 && strncmp(line, "verification time", 17) != 0) snprintf(out, out_size, "%s", line);
}

int jb_bpf_prog_load(uint32_t type, uint32_t expected_attach_type, const char *name, const struct bpf_insn *insns, size_t count,
                     const char *license, char *complaint, size_t complaint_size)
{
    complaint[0] = '\0';
    if (count > UINT32_MAX) {
        errno = E2BIG;
        return -1;
    }
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = type;
    attr.expected_attach_type = expected_attach_type;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = (uint32_t)count;
    attr.license = (uint64_t)(uintptr_t)license;
    jb_bpf_name(attr.prog_name, name);
    int fd = jb_bpf(BPF_PROG_LOAD, &attr);
    if (fd >= 0) return fd;
    int saved = errno;
    /* Only now: a megabyte allocated for every load would be touched by nobody, but still be asked for. */
    char *log = calloc(1, LOG_SIZE);
    if (!log) {
        errno = saved;
        return -1;
    }
    attr.log_buf = (uint64_t)(uintptr_t)log;
    attr.log_size = LOG_SIZE;
    attr.log_level = 1;
    fd = jb_bpf(BPF_PROG_LOAD, &attr);
    if (fd >= 0) { /* what failed did not fail again (EAGAIN, or memory) */
        free(log);
        return fd;
    }
    log[LOG_SIZE - 1] = '\0';
    last_complaint(log, complaint, complaint_size);
    free(log);
    errno = saved;
    return -1;
}
