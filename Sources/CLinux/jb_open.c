/* See jb_open.h. Async-signal-safe: ns-exec's child calls these between fork and exec. */
#define _GNU_SOURCE
#include "jb_open.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#else
struct open_how {
    unsigned long long flags;
    unsigned long long mode;
    unsigned long long resolve;
};
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS 0x04
#define RESOLVE_IN_ROOT 0x10
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
int jb_open_no_symlinks(int dir_fd, const char *path, int flags, int last_may_be_file) {
    char name[NAME_MAX + 1];
    const char *p = path;
    while (*p == '/') p++;
    if (*p == '\0') return openat(dir_fd, ".", flags | O_DIRECTORY | O_CLOEXEC);
    int current = dir_fd;
    int owned = -1;
    while (*p != '\0') {
        const char *end = strchrnul(p, '/');
        size_t length = (size_t)(end - p);
        while (*end == '/') end++;
        int last = *end == '\0';
        if (length > NAME_MAX || (length == 2 && p[0] == '.' && p[1] == '.')) {
            if (owned >= 0) close(owned);
            errno = length > NAME_MAX ? ENAMETOOLONG : EXDEV;
            return -1;
        }
        memcpy(name, p, length);
        name[length] = '\0';
        int open_flags = flags | O_NOFOLLOW | O_CLOEXEC | ((last && last_may_be_file) ? 0 : O_DIRECTORY);
        int next = openat(current, name, open_flags);
        if (owned >= 0) {
            int saved = errno;
            close(owned);
            errno = saved;
        }
        if (next < 0) return -1;
        if (last && last_may_be_file) {
            /* With O_PATH, O_NOFOLLOW opens a symlink itself instead of failing: refuse it here. */
            struct stat info;
            if (fstat(next, &info) != 0 || S_ISLNK(info.st_mode)) {
                close(next);
                errno = ELOOP;
                return -1;
            }
        }
        current = owned = next;
        p = end;
    }
    return owned;
}

static int open_in_root(int root_fd, const char *path, int flags, unsigned long long resolve) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve;
    long fd = syscall(SYS_openat2, root_fd, path, &how, sizeof how);
    if (fd < 0 && errno == ENOSYS) return jb_open_no_symlinks(root_fd, path, flags & ~O_DIRECTORY, !(flags & O_DIRECTORY));
    return (int)fd;
}

int jb_open_in_root(int root_fd, const char *path, int flags) { return open_in_root(root_fd, path, flags, 0); }

int jb_open_in_root_no_symlinks(int root_fd, const char *path, int flags) {
    return open_in_root(root_fd, path, flags, RESOLVE_NO_SYMLINKS);
}
