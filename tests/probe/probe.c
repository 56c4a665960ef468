/*
 * airlock sandbox probe: runs inside the real sandbox and checks, by exit code, what the
 * sandbox promises. Exit 0: every check passed; 1: at least one failed; 2: bad usage.
 * One line per check on stdout: "ok NAME: detail" or "FAIL NAME: detail".
 *
 * Build inside the sandbox with the image's compiler:  gcc -O2 -Wall -o /work/probe probe.c
 *
 * Usage: probe [--uid-map "0 HOSTBASE SIZE"] [--port N] [--pids N] [--tmp-bytes N]
 *              [--open-files N] [--secret-sha256 LEN:HEX]... [--scan DIR]...
 *
 *   --uid-map        the expected /proc/self/uid_map and gid_map (one line)
 *   --port           a TCP port the test listens on at the HOST's 127.0.0.1: must be unreachable
 *   --pids           the pids limit: forking stops at exactly this many processes
 *   --tmp-bytes      the size cap of /tmp
 *   --open-files     RLIMIT_NOFILE, soft and hard
 *   --secret-sha256  a secret (runner token, key material) given only as its length and
 *                    SHA-256: no run of that many [A-Za-z0-9+/=_-] characters anywhere in the
 *                    scanned files or in any visible process environment may hash to it
 *   --scan           directories to scan for secrets and PEM private keys (default: /); PEM
 *                    private keys count outside the read-only image only (images ship test keys)
 *
 * The network checks send no packet: a TCP connect to 127.0.0.1 inside the sandbox's own
 * network namespace, and a UDP connect (a route lookup only, nothing is sent) to 192.0.2.1
 * (TEST-NET-1) that must fail with ENETUNREACH.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

static void result(int ok, const char *name, const char *fmt, ...) {
    va_list ap;
    printf("%s %s: ", ok ? "ok" : "FAIL", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (!ok) failures++;
}

/* ---- SHA-256 (FIPS 180-4) ---- */
typedef struct { uint32_t h[8]; uint64_t len; uint8_t buf[64]; size_t n; } sha256_ctx;
static const uint32_t K[64] = {
    0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,
    0xd807aa98,0x12835b01,0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,
    0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,
    0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,0x06ca6351,0x14292967,
    0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,
    0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,
    0x19a4c116,0x1e376c08,0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,
    0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2};
#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
static void sha256_block(sha256_ctx *c, const uint8_t *p) {
    uint32_t w[64], a, b, cc, d, e, f, g, h;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = c->h[0]; b = c->h[1]; cc = c->h[2]; d = c->h[3]; e = c->h[4]; f = c->h[5]; g = c->h[6]; h = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g; g = f; f = e; e = d + t1; d = cc; cc = b; b = a; a = t1 + t2;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d; c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}
static void sha256(const uint8_t *data, size_t len, uint8_t out[32]) {
    sha256_ctx c = {{0x6a09e667,0xbb67ae85,0x3c6ef372,0xa54ff53a,0x510e527f,0x9b05688c,0x1f83d9ab,0x5be0cd19}, 0, {0}, 0};
    size_t i = 0;
    for (; i + 64 <= len; i += 64) sha256_block(&c, data + i);
    uint8_t tail[128] = {0};
    size_t rest = len - i;
    memcpy(tail, data + i, rest);
    tail[rest] = 0x80;
    size_t tl = rest + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int k = 0; k < 8; k++) tail[tl - 1 - k] = (uint8_t)(bits >> (8 * k));
    sha256_block(&c, tail);
    if (tl == 128) sha256_block(&c, tail + 64);
    for (int k = 0; k < 8; k++) {
        out[4 * k] = c.h[k] >> 24; out[4 * k + 1] = c.h[k] >> 16; out[4 * k + 2] = c.h[k] >> 8; out[4 * k + 3] = c.h[k];
    }
}

/* ---- secrets ---- */
#define MAX_SECRETS 64
static struct { size_t len; uint8_t hash[32]; } secrets[MAX_SECRETS];
static int nsecrets;
static long files_scanned, secret_hits, pem_hits;
static char first_hit[512];

static int is_tok(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/' || c == '=' || c == '_' || c == '-';
}

/* Checks every window of every secret's length inside each run of token characters. */
static void scan_buffer(const char *where, const unsigned char *p, size_t n, int pem) {
    size_t i = 0;
    while (i < n) {
        if (!is_tok(p[i])) { i++; continue; }
        size_t j = i;
        while (j < n && is_tok(p[j])) j++;
        for (int s = 0; s < nsecrets; s++) {
            size_t L = secrets[s].len;
            for (size_t k = i; k + L <= j; k++) {
                uint8_t h[32];
                sha256(p + k, L, h);
                if (memcmp(h, secrets[s].hash, 32) == 0) {
                    if (!secret_hits) snprintf(first_hit, sizeof first_hit, "secret %d in %s", s, where);
                    secret_hits++;
                }
            }
        }
        i = j;
    }
    /* PEM private keys: a line "-----BEGIN <label>PRIVATE KEY-----" followed by a line of
       base64 (a real key, not a program's string constant such as gnutls's). */
    const unsigned char *q = p, *end = p + n;
    while (pem && (q = memmem(q, end - q, "-----BEGIN ", 11)) != NULL) {
        const unsigned char *eol = memchr(q, '\n', end - q);
        size_t span = (eol ? eol : end) - q;
        if (span > 0 && q[span - 1] == '\r') span--;
        int header = span >= 27 && span < 100 && !memcmp(q + span - 16, "PRIVATE KEY-----", 16);
        size_t body = 0;
        if (header && eol) {
            const unsigned char *b = eol + 1;
            while (b + body < end && is_tok(b[body])) body++;
        }
        if (header && body >= 16) {
            if (!pem_hits) snprintf(first_hit + strlen(first_hit), sizeof first_hit - strlen(first_hit), " PEM private key in %s", where);
            pem_hits++;
        }
        q += 11;
    }
}

#define MAX_FILE (64L << 20)
static uint64_t image_mnt; /* mount id of the read-only image at / */
static uint64_t mnt_id(int dirfd, const char *path, int flags) {
    struct statx stx;
    if (statx(dirfd, path, flags, STATX_MNT_ID, &stx) != 0 || !(stx.stx_mask & STATX_MNT_ID)) return 0;
    return stx.stx_mnt_id;
}
static void scan_fd(int fd, const char *where) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE) return;
    size_t cap = st.st_size > 0 ? (size_t)st.st_size : 1 << 20; /* /proc files report 0 */
    unsigned char *buf = malloc(cap + 1);
    if (!buf) return;
    size_t n = 0;
    ssize_t r;
    while (n < cap && (r = read(fd, buf + n, cap - n)) > 0) n += (size_t)r;
    files_scanned++;
    /* The digest-pinned image is public content the job chose (gnutls, for one, embeds test
       keys): PEM private keys count everywhere else; the secrets' hashes count everywhere. */
    uint64_t mnt = mnt_id(fd, "", AT_EMPTY_PATH);
    scan_buffer(where, buf, n, mnt == 0 || mnt != image_mnt);
    free(buf);
}

static void scan_tree(int dir_fd, const char *path, int depth) {
    if (depth > 64) return;
    DIR *d = fdopendir(dir_fd);
    if (!d) { close(dir_fd); return; }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", strcmp(path, "/") ? path : "", e->d_name);
        /* Kernel file systems: their secrets are checked through environ below. */
        if (!strcmp(child, "/proc") || !strcmp(child, "/sys") || !strcmp(child, "/dev")) continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) continue; /* unreadable: then it cannot leak either */
        struct stat st;
        if (fstat(fd, &st) != 0) { close(fd); continue; }
        if (S_ISDIR(st.st_mode)) {
            scan_tree(fd, child, depth + 1); /* takes the fd */
        } else {
            scan_fd(fd, child);
            close(fd);
        }
    }
    closedir(d);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* ---- checks ---- */
static void check_readonly_root(void) {
    const char *paths[] = {"/airlock-probe", "/etc/airlock-probe", "/usr/bin/airlock-probe", "/bin/airlock-probe"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        int fd = open(paths[i], O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd >= 0) { close(fd); unlink(paths[i]); result(0, "root-readonly", "created %s", paths[i]); return; }
        if (errno != EROFS) { result(0, "root-readonly", "%s: %s (want EROFS)", paths[i], strerror(errno)); return; }
    }
    int fd = open("/etc/passwd", O_WRONLY | O_APPEND);
    if (fd >= 0) { close(fd); result(0, "root-readonly", "/etc/passwd opened for writing"); return; }
    result(1, "root-readonly", "/, /etc, /usr/bin, /bin refuse writes with EROFS");
}

static void check_network(int port) {
    /* interfaces: only lo */
    DIR *d = opendir("/sys/class/net");
    int others = 0, lo = 0;
    char names[256] = "";
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            if (!strcmp(e->d_name, "lo")) lo = 1; else others++;
            strncat(names, e->d_name, sizeof names - strlen(names) - 2);
            strcat(names, " ");
        }
        closedir(d);
    }
    result(lo && !others, "only-loopback", "interfaces: %s", names);

    /* routes: none in IPv4 (a lo-only namespace has no entry in /proc/net/route), IPv6 only on lo */
    FILE *f = fopen("/proc/net/route", "r");
    int routes = 0;
    char line[512];
    if (f) { while (fgets(line, sizeof line, f)) routes++; fclose(f); routes--; }
    int v6_other = 0;
    f = fopen("/proc/net/ipv6_route", "r");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            char *last = strrchr(line, ' ');
            if (last && strncmp(last + 1, "lo", 2) != 0) v6_other++;
        }
        fclose(f);
    }
    result(routes <= 0 && !v6_other, "no-route", "%d IPv4 routes, %d IPv6 routes off lo", routes < 0 ? 0 : routes, v6_other);

    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in ext = {.sin_family = AF_INET, .sin_port = htons(9)};
    inet_pton(AF_INET, "192.0.2.1", &ext.sin_addr);
    int r = connect(s, (struct sockaddr *)&ext, sizeof ext);
    result(r != 0 && errno == ENETUNREACH, "no-route-lookup", "UDP connect (no packet) to 192.0.2.1: %s",
           r == 0 ? "succeeded" : strerror(errno));
    close(s);

    if (port > 0) {
        s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in host = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &host.sin_addr);
        r = connect(s, (struct sockaddr *)&host, sizeof host);
        result(r != 0, "host-port-unreachable", "connect 127.0.0.1:%d: %s", port, r == 0 ? "connected" : strerror(errno));
        close(s);
    }
}

static void check_caps(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int bad = 0, seen = 0, nnp = -1, seccomp = -1;
    char detail[512] = "";
    if (!f) { result(0, "no-capabilities", "cannot read /proc/self/status"); return; }
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Cap", 3)) {
            seen++;
            char *v = strchr(line, ':');
            if (v && strtoull(v + 1, NULL, 16) != 0) { bad++; strncat(detail, line, sizeof detail - strlen(detail) - 1); }
        }
        if (!strncmp(line, "NoNewPrivs:", 11)) nnp = atoi(line + 11);
        if (!strncmp(line, "Seccomp:", 8)) seccomp = atoi(line + 8);
    }
    fclose(f);
    result(seen == 5 && !bad, "no-capabilities", "%d capability sets, %d non-empty %s", seen, bad, detail);
    result(nnp == 1, "no-new-privs", "NoNewPrivs %d", nnp);
    result(seccomp == 2, "seccomp-filter", "Seccomp mode %d", seccomp);
}

static void norm(char *s) { /* collapse whitespace */
    char *w = s; int sp = 1;
    for (char *r = s; *r; r++) {
        if (*r == ' ' || *r == '\t' || *r == '\n') { if (!sp) *w++ = ' '; sp = 1; }
        else { *w++ = *r; sp = 0; }
    }
    if (w > s && w[-1] == ' ') w--;
    *w = 0;
}

static void check_ids(const char *want) {
    const char *files[] = {"/proc/self/uid_map", "/proc/self/gid_map"};
    char w[256];
    snprintf(w, sizeof w, "%s", want);
    norm(w);
    for (int i = 0; i < 2; i++) {
        char buf[512] = "";
        FILE *f = fopen(files[i], "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        buf[n] = 0;
        norm(buf);
        result(!strcmp(buf, w), i ? "gid-map" : "uid-map", "%s is \"%s\", planned \"%s\"", files[i], buf, w);
    }
    gid_t groups[8];
    int ng = getgroups(8, groups);
    result(getuid() == 1000 && geteuid() == 1000 && getgid() == 1000 && ng == 0, "step-identity",
           "uid %d euid %d gid %d, %d supplementary groups", getuid(), geteuid(), getgid(), ng);
}

static void check_pids(long limit) {
    /* Count this process, its parents in the namespace are none (the probe is pid 1 or a
       child of the step's shell): fork sleeping children until fork fails. */
    pid_t kids[65536];
    long n = 0;
    int err = 0;
    while (n < (long)(sizeof kids / sizeof *kids)) {
        pid_t p = fork();
        if (p == 0) { pause(); _exit(0); }
        if (p < 0) { err = errno; break; }
        kids[n++] = p;
    }
    for (long i = 0; i < n; i++) kill(kids[i], SIGKILL);
    for (long i = 0; i < n; i++) waitpid(kids[i], NULL, 0);
    long others = 0; /* processes besides the probe and its children: the step's shell, if any */
    DIR *d = opendir("/proc");
    struct dirent *e;
    if (d) { while ((e = readdir(d)) != NULL) if (atoi(e->d_name) > 0) others++; closedir(d); }
    others -= 1; /* the probe itself */
    long total = n + 1 + others;
    result(err == EAGAIN && total == limit, "pids-limit", "fork failed with %s after %ld processes (limit %ld)",
           err ? strerror(err) : "nothing", total, limit);
}

static void check_tmp(unsigned long long want) {
    struct statvfs s;
    if (statvfs("/tmp", &s) != 0) { result(0, "tmp-size", "statvfs /tmp: %s", strerror(errno)); return; }
    unsigned long long size = (unsigned long long)s.f_blocks * s.f_frsize;
    unsigned long long page = (unsigned long long)sysconf(_SC_PAGESIZE);
    unsigned long long rounded = (want + page - 1) / page * page;
    result(size == rounded, "tmp-size", "/tmp holds %llu bytes, planned %llu", size, want);
}

static void check_nofile(unsigned long long want) {
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    result(r.rlim_cur == want && r.rlim_max == want, "open-files-limit", "RLIMIT_NOFILE %llu:%llu, planned %llu",
           (unsigned long long)r.rlim_cur, (unsigned long long)r.rlim_max, want);
    struct rlimit up = {want + 1, want + 1};
    int raised = setrlimit(RLIMIT_NOFILE, &up) == 0;
    int err = errno;
    result(!raised && err == EPERM, "open-files-limit-fixed", "raising it: %s", raised ? "succeeded" : strerror(err));
}

static void check_secrets(int nscan, char **scan) {
    image_mnt = mnt_id(AT_FDCWD, "/", 0);
    for (int i = 0; i < nscan; i++) {
        int fd = open(scan[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) scan_tree(fd, scan[i], 0);
    }
    /* every visible process's environment and command line (the sandbox's pid namespace) */
    DIR *d = opendir("/proc");
    struct dirent *e;
    long procs = 0;
    while (d && (e = readdir(d)) != NULL) {
        if (atoi(e->d_name) <= 0) continue;
        const char *files[] = {"environ", "cmdline"};
        for (int k = 0; k < 2; k++) {
            char p[320];
            snprintf(p, sizeof p, "/proc/%s/%s", e->d_name, files[k]);
            int fd = open(p, O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue;
            unsigned char buf[1 << 16];
            ssize_t n = read(fd, buf, sizeof buf);
            close(fd);
            if (n > 0) { scan_buffer(p, buf, (size_t)n, 1); procs++; }
        }
    }
    if (d) closedir(d);
    extern char **environ;
    for (char **v = environ; *v; v++) scan_buffer("environ", (const unsigned char *)*v, strlen(*v), 1);
    result(!secret_hits && !pem_hits && files_scanned > 100, "no-secrets",
           "%ld files and %ld /proc entries scanned for %d secret hashes and PEM private keys: %ld secret hits, %ld PEM private keys%s%s",
           files_scanned, procs, nsecrets, secret_hits, pem_hits, first_hit[0] ? "; first: " : "", first_hit);
}

int main(int argc, char **argv) {
    const char *uid_map = NULL;
    int port = 0;
    long pids = 0;
    unsigned long long tmp = 0, nofile = 0;
    char *scan[16];
    int nscan = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "probe: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "--uid-map")) uid_map = v;
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--pids")) pids = atol(v);
        else if (!strcmp(a, "--tmp-bytes")) tmp = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--open-files")) nofile = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--scan") && nscan < 16) scan[nscan++] = (char *)v;
        else if (!strcmp(a, "--secret-sha256") && nsecrets < MAX_SECRETS) {
            char *colon = strchr(v, ':');
            if (!colon || strlen(colon + 1) != 64) { fprintf(stderr, "probe: --secret-sha256 LEN:HEX64\n"); return 2; }
            secrets[nsecrets].len = strtoul(v, NULL, 10);
            for (int k = 0; k < 32; k++) {
                int hi = hexval(colon[1 + 2 * k]), lo = hexval(colon[2 + 2 * k]);
                if (hi < 0 || lo < 0) { fprintf(stderr, "probe: bad hex\n"); return 2; }
                secrets[nsecrets].hash[k] = (uint8_t)(hi << 4 | lo);
            }
            if (secrets[nsecrets].len == 0) { fprintf(stderr, "probe: zero length\n"); return 2; }
            nsecrets++;
        } else { fprintf(stderr, "probe: unknown argument %s\n", a); return 2; }
    }
    if (!nscan) scan[nscan++] = "/";
    /* self-test of the hash: sha256("abc") */
    uint8_t h[32];
    sha256((const uint8_t *)"abc", 3, h);
    if (h[0] != 0xba || h[31] != 0xad) { fprintf(stderr, "probe: sha256 self-test failed\n"); return 2; }

    check_readonly_root();
    check_network(port);
    check_caps();
    if (uid_map) check_ids(uid_map);
    if (tmp) check_tmp(tmp);
    if (nofile) check_nofile(nofile);
    check_secrets(nscan, scan);
    if (pids) check_pids(pids); /* last: it briefly fills the process table */
    printf("%s: %d failed\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
