/*
 * jb_devices.c: the device fence program (see jb_devices.h). The instructions are those systemd's
 * bpf-devices.c emits for the same job, written out by hand: load the context, then one compare-and-exit block
 * per rule, then the default verdict.
 */
#include "jb_devices.h"
#include "jb_bpf.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    struct bpf_insn result;
    memset(&result, 0, sizeof(result));
    result.code = code;
    result.dst_reg = dst;
    result.src_reg = src;
    result.off = off;
    result.imm = imm;
    return result;
}

/* Registers after the prologue: r2 the requested access, r3 the device type, r4 the major, r5 the minor. */
enum { R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5 };

#define LOAD_U32(dst, off) insn(BPF_LDX | BPF_MEM | BPF_W, (dst), R1, (off), 0)
#define MOV_REG(dst, src)  insn(BPF_ALU64 | BPF_MOV | BPF_X, (dst), (src), 0, 0)
#define MOV_IMM(dst, imm)  insn(BPF_ALU64 | BPF_MOV | BPF_K, (dst), 0, 0, (imm))
#define AND_IMM(dst, imm)  insn(BPF_ALU64 | BPF_AND | BPF_K, (dst), 0, 0, (imm))
#define RSH_IMM(dst, imm)  insn(BPF_ALU64 | BPF_RSH | BPF_K, (dst), 0, 0, (imm))
#define JNE_IMM(dst, imm, off) insn(BPF_JMP | BPF_JNE | BPF_K, (dst), 0, (off), (imm))
#define EXIT()             insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* Longest block per rule: type, access (3), major, minor, verdict, exit. */
#define RULE_MAX_INSNS 8
#define PROLOGUE_INSNS 6

/* Writes the block for RULE at OUT; returns its length. */
static size_t assemble_rule(const struct jb_device_rule *rule, struct bpf_insn *out)
{
    struct bpf_insn block[RULE_MAX_INSNS];
    int16_t jumps[RULE_MAX_INSNS]; /* indexes of the conditional jumps, patched to skip the block */
    size_t n = 0, j = 0;
    if (rule->type != 0) {
        jumps[j++] = (int16_t)n;
        block[n++] = JNE_IMM(R3, (int32_t)rule->type, 0);
    }
    uint32_t forbidden = ~rule->access & (JB_DEVICE_MKNOD | JB_DEVICE_READ | JB_DEVICE_WRITE);
    if (forbidden != 0) {
        /* The rule covers the request only when no requested access lies outside ACCESS. */
        block[n++] = MOV_REG(R1, R2);
        block[n++] = AND_IMM(R1, (int32_t)forbidden);
        jumps[j++] = (int16_t)n;
        block[n++] = JNE_IMM(R1, 0, 0);
    }
    if (rule->major != JB_DEVICE_ANY) {
        jumps[j++] = (int16_t)n;
        block[n++] = JNE_IMM(R4, (int32_t)rule->major, 0);
    }
    if (rule->minor != JB_DEVICE_ANY) {
        jumps[j++] = (int16_t)n;
        block[n++] = JNE_IMM(R5, (int32_t)rule->minor, 0);
    }
    block[n++] = MOV_IMM(R0, rule->verdict ? 1 : 0);
    block[n++] = EXIT();
    for (size_t i = 0; i < j; i++) block[jumps[i]].off = (int16_t)(n - (size_t)jumps[i] - 1);
    memcpy(out, block, n * sizeof(block[0]));
    return n;
}

int jb_device_fence_attach(int cgroup_fd, const struct jb_device_rule *rules, size_t count, uint32_t default_verdict, char *complaint,
                           size_t complaint_size)
{
    complaint[0] = '\0'; /* until the verifier says otherwise */
    if (count > JB_DEVICE_MAX_RULES) {
        errno = E2BIG;
        return -1;
    }
    struct bpf_insn *program = calloc(PROLOGUE_INSNS + count * RULE_MAX_INSNS + 2, sizeof(struct bpf_insn));
    if (program == NULL) return -1;
    size_t n = 0;
    /* struct bpf_cgroup_dev_ctx: access_type = (access << 16) | type, then major, then minor. */
    program[n++] = LOAD_U32(R2, 0);
    program[n++] = MOV_REG(R3, R2);
    program[n++] = AND_IMM(R3, 0xFFFF);
    program[n++] = RSH_IMM(R2, 16);
    program[n++] = LOAD_U32(R4, 4);
    program[n++] = LOAD_U32(R5, 8);
    for (size_t i = 0; i < count; i++) n += assemble_rule(&rules[i], &program[n]);
    program[n++] = MOV_IMM(R0, default_verdict ? 1 : 0);
    program[n++] = EXIT();

    int program_fd = jb_bpf_prog_load(BPF_PROG_TYPE_CGROUP_DEVICE, BPF_CGROUP_DEVICE, "jobbox_devices", program, n, "GPL", complaint,
                                      complaint_size);
    int load_error = errno;
    free(program);
    if (program_fd < 0) {
        errno = load_error;
        return -1;
    }

    union bpf_attr attach;
    memset(&attach, 0, sizeof(attach));
    attach.target_fd = (uint32_t)cgroup_fd;
    attach.attach_bpf_fd = (uint32_t)program_fd;
    attach.attach_type = BPF_CGROUP_DEVICE;
    attach.attach_flags = BPF_F_ALLOW_MULTI;
    int result = jb_bpf(BPF_PROG_ATTACH, &attach);
    int saved = errno;
    close(program_fd);
    errno = saved;
    return result < 0 ? -1 : 0;
}

int jb_device_fence_count(int cgroup_fd)
{
    uint32_t ids[64];
    union bpf_attr query;
    memset(&query, 0, sizeof(query));
    query.query.target_fd = (uint32_t)cgroup_fd;
    query.query.attach_type = BPF_CGROUP_DEVICE;
    query.query.prog_ids = (uint64_t)(uintptr_t)ids;
    query.query.prog_cnt = 64;
    if (jb_bpf(BPF_PROG_QUERY, &query) < 0) return -1;
    return (int)query.query.prog_cnt;
}

uint32_t jb_dev_major(uint64_t dev)
{
    return (uint32_t)major(dev);
}

uint32_t jb_dev_minor(uint64_t dev)
{
    return (uint32_t)minor(dev);
}
