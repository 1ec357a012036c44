/*
 * jb_glibc_compat.c: keeps the release binaries loadable by the oldest glibc jobbox supports (2.34, EL9).
 *
 * The release link (Package.swift, releaseLinking) renames two references with --wrap: the Swift runtime's
 * hypotf, which glibc 2.35 gave a new symbol version, and the arc4random of the libstdc++ archive linked in,
 * which glibc 2.36 added. Each is answered here by what 2.34 has; scripts/check-glibc-symbols.sh fails the
 * release build when any symbol version newer than 2.34 is left. Debug builds do not wrap and never call these.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/random.h>

/* The symbol version every glibc of the architecture has (its first). */
#if defined(__x86_64__)
#define JB_GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define JB_GLIBC_BASE "GLIBC_2.17"
#endif

#ifdef JB_GLIBC_BASE
/* hypotf as glibc before 2.35 exported it: the same function, only its error handling was versioned anew. */
float jb_hypotf_base(float x, float y);
__asm__(".symver jb_hypotf_base, hypotf@" JB_GLIBC_BASE);

float __wrap_hypotf(float x, float y);
float __wrap_hypotf(float x, float y) { return jb_hypotf_base(x, y); }
#endif

/* arc4random from getrandom (glibc 2.25), as glibc 2.36 does it: blocks until the kernel's pool is ready. */
uint32_t __wrap_arc4random(void);
uint32_t __wrap_arc4random(void) {
    uint32_t value = 0;
    size_t filled = 0;
    while (filled < sizeof value) {
        ssize_t got = getrandom((char *)&value + filled, sizeof value - filled, 0);
        if (got > 0) filled += (size_t)got;
        else if (got < 0 && errno != EINTR) break; /* ENOSYS only before Linux 3.17, which jobbox does not run on */
    }
    return value;
}
