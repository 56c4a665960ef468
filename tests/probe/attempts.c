/*
 * Escape attempts for tests/e2e/sandbox_escape.rs, compiled and run inside the sandbox:
 *     gcc -O2 -Wall -o /work/attempts attempts.c && /work/attempts NAME [ARG]
 * Exit 42: the attempt was blocked the way the sandbox promises (the errno is checked, so a
 * blocked attempt cannot pass by accident); 0: it worked (an escape); 3: something else
 * happened (printed). Every attempt says what it saw on stdout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#define BLOCKED 42
#define ESCAPED 0
#define ODD 3

static int expect_errno(const char *what, long r, int want) {
    if (r >= 0) { printf("ESCAPED %s: succeeded (%ld)\n", what, r); return ESCAPED; }
    if (errno != want) { printf("ODD %s: %s, expected %s\n", what, strerror(errno), strerror(want)); return ODD; }
    printf("blocked %s: %s\n", what, strerror(errno));
    return BLOCKED;
}

/* Combines results: all blocked -> 42, any escape -> 0, else 3. */
static int all(int *rs, int n) {
    int odd = 0;
    for (int i = 0; i < n; i++) {
        if (rs[i] == ESCAPED) return ESCAPED;
        if (rs[i] != BLOCKED) odd = 1;
    }
    return odd ? ODD : BLOCKED;
}

static int do_mount(void) {
    int r[4];
    r[0] = expect_errno("mount tmpfs on /mnt", mount("none", "/mnt", "tmpfs", 0, NULL), EPERM);
    r[1] = expect_errno("remount / rw", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL), EPERM);
    r[2] = expect_errno("umount /proc", umount2("/proc", MNT_DETACH), EPERM);
    r[3] = expect_errno("fsopen", syscall(SYS_fsopen, "tmpfs", 0), EPERM);
    return all(r, 4);
}

static int do_userns(void) {
    int r[4];
    r[0] = expect_errno("unshare(CLONE_NEWUSER)", unshare(CLONE_NEWUSER), EPERM);
    r[1] = expect_errno("unshare(CLONE_NEWNS|CLONE_NEWNET)", unshare(CLONE_NEWNS | CLONE_NEWNET), EPERM);
    long p = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (p == 0) _exit(0);
    if (p > 0) waitpid((pid_t)p, NULL, 0);
    r[2] = expect_errno("clone(CLONE_NEWUSER)", p, EPERM);
    struct clone_args args = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
    long q = syscall(SYS_clone3, &args, sizeof args);
    if (q == 0) _exit(0);
    if (q > 0) waitpid((pid_t)q, NULL, 0);
    r[3] = expect_errno("clone3(CLONE_NEWUSER)", q, ENOSYS);
    return all(r, 4);
}

static int do_setns(void) {
    int fd = open("/proc/self/ns/net", O_RDONLY);
    return expect_errno("setns into a namespace", setns(fd, 0), EPERM);
}

static int do_ptrace(void) {
    pid_t child = fork();
    if (child == 0) { for (;;) pause(); }
    int r[3];
    r[0] = expect_errno("ptrace(PTRACE_ATTACH, sibling)", ptrace(PTRACE_ATTACH, child, 0, 0), EPERM);
    r[1] = expect_errno("ptrace(PTRACE_SEIZE, sibling)", ptrace(PTRACE_SEIZE, child, 0, 0), EPERM);
    char buf[8];
    struct iovec local = {buf, sizeof buf}, remote = {(void *)0x400000, sizeof buf};
    r[2] = expect_errno("process_vm_readv(sibling)", syscall(SYS_process_vm_readv, child, &local, 1, &remote, 1, 0), EPERM);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return all(r, 3);
}

static int do_keyctl(void) {
    int r[3];
    r[0] = expect_errno("keyctl(JOIN_SESSION_KEYRING)", syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, 0), EPERM);
    r[1] = expect_errno("add_key", syscall(SYS_add_key, "user", "airlock", "x", 1, -3 /* session */), EPERM);
    r[2] = expect_errno("request_key", syscall(SYS_request_key, "user", "airlock", NULL, -3), EPERM);
    return all(r, 3);
}

static int do_bpf(void) {
    struct bpf_insn prog[] = {{.code = BPF_JMP | BPF_EXIT}};
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    attr.insns = (uint64_t)(uintptr_t)prog;
    attr.insn_cnt = 1;
    attr.license = (uint64_t)(uintptr_t)"GPL";
    int r[2];
    r[0] = expect_errno("bpf(BPF_PROG_LOAD)", syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr), EPERM);
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    r[1] = expect_errno("bpf(BPF_MAP_CREATE)", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr), EPERM);
    return all(r, 2);
}

static int do_kernel(void) {
    int r[5];
    r[0] = expect_errno("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), EPERM);
    r[1] = expect_errno("userfaultfd", syscall(SYS_userfaultfd, 0), EPERM);
    r[2] = expect_errno("init_module", syscall(SYS_init_module, NULL, 0, ""), EPERM);
    r[3] = expect_errno("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0), EPERM);
    r[4] = expect_errno("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL), EPERM);
    return all(r, 5);
}

/* Signals a host process by pid (it is in another pid namespace) and everything it can see. */
static int do_kill(const char *arg) {
    pid_t host = arg ? (pid_t)atoi(arg) : 0;
    int r[2];
    long k = host > 0 ? kill(host, SIGKILL) : -1;
    if (host <= 0) errno = ESRCH;
    /* The pid either does not exist here (ESRCH) or is one of our own processes: accept
       ESRCH only, so a match in our namespace shows up as ODD. */
    r[0] = expect_errno("kill(host pid)", k, ESRCH);
    /* kill(-1) reaches every process we may signal: only our own namespace's. */
    signal(SIGTERM, SIG_IGN);
    kill(-1, SIGTERM);
    printf("sent SIGTERM to every process visible (pid -1)\n");
    r[1] = BLOCKED; /* the host side checks its process survived */
    return all(r, 2);
}

static int do_devices(void) {
    int r[3];
    r[0] = expect_errno("mknod /dev/sda-like block device", mknod("/tmp/sda", S_IFBLK | 0600, makedev(8, 0)), EPERM);
    r[1] = expect_errno("mknod /dev/mem-like char device", mknod("/tmp/mem", S_IFCHR | 0600, makedev(1, 1)), EPERM);
    int fd = open("/dev/kmsg", O_RDONLY);
    r[2] = expect_errno("open /dev/kmsg", fd, ENOENT);
    return all(r, 3);
}

/* Runs every setuid/setgid file found and checks its credentials; also a self-made one. */
static int do_setuid(void) {
    int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    if (nnp != 1) { printf("ESCAPED no_new_privs is %d\n", nnp); return ESCAPED; }
    /* a setuid copy of a shell-like program: owned by us, nosuid mount, no_new_privs */
    int in = open("/bin/sleep", O_RDONLY), out = open("/tmp/suid", O_WRONLY | O_CREAT | O_TRUNC, 0755);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) if (write(out, buf, (size_t)n) != n) return ODD;
    close(in);
    close(out);
    if (chmod("/tmp/suid", 06755) != 0) { printf("chmod u+s: %s\n", strerror(errno)); }
    pid_t p = fork();
    if (p == 0) { execl("/tmp/suid", "suid", "2", (char *)NULL); _exit(127); }
    usleep(300000);
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", p);
    FILE *f = fopen(path, "r");
    int ok = 1;
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Uid:", 4) || !strncmp(line, "Gid:", 4) || !strncmp(line, "CapEff:", 7)) {
            printf("  setuid child %s", line);
            if (!strncmp(line, "CapEff:", 7) && strtoull(line + 7, NULL, 16) != 0) ok = 0;
        }
    }
    if (f) fclose(f);
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
    if (!ok) { printf("ESCAPED setuid child has capabilities\n"); return ESCAPED; }
    /* the effective uid may only ever be 1000: no file here is owned by anyone else and setuid */
    FILE *m = popen("find / -xdev \\( -perm -4000 -o -perm -2000 \\) -type f ! -path /tmp/suid 2>/dev/null", "r");
    int found = 0;
    while (m && fgets(line, sizeof line, m)) { printf("  setuid/setgid file: %s", line); found++; }
    if (m) pclose(m);
    if (found) { printf("ODD setuid files exist in the image\n"); return ODD; }
    printf("blocked setuid: no setuid file in the image, no_new_privs set, a self-made one gains nothing\n");
    return BLOCKED;
}

/* A system call through the i386 ABI (int 0x80) bypasses an x86_64-only filter unless the
   filter kills other ABIs: the child must die of SIGSYS (or SIGSEGV without IA32 emulation). */
static int do_i386(void) {
    pid_t p = fork();
    if (p == 0) {
        long ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) /* i386 getpid */ : "memory");
        printf("ESCAPED i386 getpid returned %ld\n", ret);
        _exit(0);
    }
    int st = 0;
    waitpid(p, &st, 0);
    if (WIFSIGNALED(st) && (WTERMSIG(st) == SIGSYS || WTERMSIG(st) == SIGSEGV)) {
        printf("blocked i386 ABI system call: child killed by signal %d\n", WTERMSIG(st));
        return BLOCKED;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return ESCAPED;
    printf("ODD i386 child status %d\n", st);
    return ODD;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: attempts NAME [ARG]\n"); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *n = argv[1], *arg = argc > 2 ? argv[2] : NULL;
    if (!strcmp(n, "mount")) return do_mount();
    if (!strcmp(n, "userns")) return do_userns();
    if (!strcmp(n, "setns")) return do_setns();
    if (!strcmp(n, "ptrace")) return do_ptrace();
    if (!strcmp(n, "keyctl")) return do_keyctl();
    if (!strcmp(n, "bpf")) return do_bpf();
    if (!strcmp(n, "kernel")) return do_kernel();
    if (!strcmp(n, "kill")) return do_kill(arg);
    if (!strcmp(n, "devices")) return do_devices();
    if (!strcmp(n, "setuid")) return do_setuid();
    if (!strcmp(n, "i386")) return do_i386();
    fprintf(stderr, "attempts: unknown attempt %s\n", n);
    return 2;
}
