/*
 * jb_nss.c: keeps a statically linked tool from loading NSS modules.
 *
 * All five tools are released as static executables (bench/README.md: half their
 * start-up was the dynamic loader). A static glibc answers files and DNS lookups itself, but for any other
 * service named in /etc/nsswitch.conf (sss, ldap, systemd) it dlopens the module, which brings the node's shared
 * libc in beside the static one: measured here, a lookup of an unknown user crashes in libnss_systemd. jobbox
 * asks the node's user and group databases through getent (JobboxCore's UserDatabase) instead, and this
 * constructor makes sure no lookup a library makes on its own (Foundation's home directory, say) can load a
 * module: in a static executable every database is served by the built-in services only.
 */
#define _GNU_SOURCE
#include <nss.h>
#include <sys/auxv.h>

__attribute__((constructor)) static void jb_nss_built_in_only(void) {
    /* AT_BASE is the program interpreter's address: 0 when there is none, i.e. the executable is static. A
     * dynamically linked tool (a debug build) loads modules with the node's own libc, as it should. */
    if (getauxval(AT_BASE) != 0) return;
    static const char *const files_only[] = {
        "aliases", "ethers", "group", "gshadow", "initgroups", "netgroup", "networks",
        "passwd", "protocols", "publickey", "rpc", "services", "shadow",
    };
    for (unsigned i = 0; i < sizeof files_only / sizeof files_only[0]; i++) {
        __nss_configure_lookup(files_only[i], "files");
    }
    __nss_configure_lookup("hosts", "files dns");
}
