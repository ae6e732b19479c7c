/*
 * seccomp-numa: run a command the way Docker's default seccomp profile runs it without
 * CAP_SYS_NICE, as far as NUMA goes: mbind, set_mempolicy, get_mempolicy, move_pages and
 * migrate_pages fail with EPERM; every other call works.
 *
 * Usage: seccomp-numa COMMAND [ARG ...]
 *
 * The filter is inherited by COMMAND, its threads and its children, and cannot be removed.
 * Calls made through another system call ABI than the one this program was built for (i386
 * int 0x80 or x32 on x86_64) are all refused with EPERM, so they cannot go around the filter.
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -o build/seccomp-numa tools/seccomp-numa.c
 * Exit status: COMMAND's own; 2 for a usage error; 1 when the filter cannot be installed;
 * 126 when COMMAND cannot be run, 127 when it is not found (as a shell does).
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_X86_64
/* x32 calls share the x86_64 audit arch and carry this bit in their number. */
#define FOREIGN_ABI_BIT 0x40000000u
#elif defined(__aarch64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#define FOREIGN_ABI_BIT 0u
#else
#error "seccomp-numa knows the audit arch of x86_64 and aarch64 only"
#endif

#define REFUSE (SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))

/* One instruction pair per refused call: on a match jump to the refusal. */
#define REFUSE_CALL(nr) \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
    BPF_STMT(BPF_RET | BPF_K, REFUSE)

static int install_filter(void)
{
    struct sock_filter program[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, REFUSE),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        /* With FOREIGN_ABI_BIT 0 (aarch64) this test never matches. */
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, FOREIGN_ABI_BIT, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, REFUSE),
        REFUSE_CALL(__NR_mbind),
        REFUSE_CALL(__NR_set_mempolicy),
        REFUSE_CALL(__NR_get_mempolicy),
        REFUSE_CALL(__NR_move_pages),
        REFUSE_CALL(__NR_migrate_pages),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fprog = {
        .len = (unsigned short)(sizeof(program) / sizeof(program[0])),
        .filter = program,
    };

    /* Lets an unprivileged process install a filter, and keeps set-uid programs from
     * gaining privileges under it. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) != 0) {
        fprintf(stderr, "seccomp-numa: prctl(PR_SET_NO_NEW_PRIVS): %s\n", strerror(errno));
        return -1;
    }
    if (prctl(PR_SET_SECCOMP, (unsigned long)SECCOMP_MODE_FILTER, &fprog, 0L, 0L) != 0) {
        fprintf(stderr, "seccomp-numa: prctl(PR_SET_SECCOMP): %s%s\n", strerror(errno),
                errno == EINVAL ? " (a kernel without CONFIG_SECCOMP_FILTER?)" : "");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fprintf(stderr,
                "usage: seccomp-numa COMMAND [ARG ...]\n"
                "Runs COMMAND with mbind, set_mempolicy, get_mempolicy, move_pages and\n"
                "migrate_pages refused with EPERM (as Docker's default seccomp profile does\n"
                "without CAP_SYS_NICE).\n");
        return argc < 2 ? 2 : 0;
    }
    if (install_filter() != 0)
        return 1;
    execvp(argv[1], argv + 1);
    fprintf(stderr, "seccomp-numa: cannot run %s: %s\n", argv[1], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}
