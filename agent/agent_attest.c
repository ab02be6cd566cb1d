/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_attest: SO_PEERCRED plus /proc, read through a pinned process.
 * See agent_attest.h for the order of checks and why each is there.
 */
#include "agent/agent_attest.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "api/core/mf_buf.h"
#include "api/core/mf_log.h"
#include "api/core/mf_mem.h"
#include "api/pki/mf_x509.h"

#define PROC_FILE_MAX (64u * 1024u) /* /proc/<pid>/status with many groups */
#define SELS_MAX      (8u + 65536u) /* fixed selectors plus NGROUPS_MAX */

/* see agent_attest.h */
mf_res agent_attestor_init(struct agent_attestor *a, uint64_t hash_max)
{
    MF_ENSURE_REF(a);
    memset(a, 0, sizeof(*a));
    MF_ENSURE(pthread_mutex_init(&a->mu, NULL) == 0, MF_ERR_INTERNAL);
    a->hash_max = hash_max;
    return MF_RES_OK;
}

/* see agent_attest.h */
void agent_attestor_cleanup(struct agent_attestor *a)
{
    if (a == NULL) {
        return;
    }
    pthread_mutex_destroy(&a->mu);
    memset(a, 0, sizeof(*a));
}

/* see agent_attest.h */
void agent_workload_cleanup(struct agent_workload *w)
{
    if (w == NULL) {
        return;
    }
    mf_selectors_free(w->sels, w->n_sels);
    memset(w, 0, sizeof(*w));
}

/* see agent_attest.h */
uint64_t agent_attest_boot_ticks(void)
{
    struct timespec ts;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0 || clock_gettime(CLOCK_BOOTTIME, &ts) != 0) {
        return 0;
    }
    /* floor, as the kernel does for starttime, so that a process started in
     * the same tick as the connection still passes */
    return (uint64_t)ts.tv_sec * (uint64_t)hz +
           (uint64_t)ts.tv_nsec / (1000000000ull / (uint64_t)hz);
}

/* see agent_attest.h */
mf_res agent_attest_stamp_pid(pid_t pid, struct agent_conn_stamp *out)
{
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    out->ticks = agent_attest_boot_ticks();
    out->pid = pid;
    if (pid <= 0) {
        return MF_RES_OK;
    }
    /* Pin first, as agent_attest_pid does: if the pinned process is still
     * alive after the stat, /proc/<pid> (opened after the pin) was it and
     * the executable is the one the connecting process runs. */
    char dir[64];
    int n = snprintf(dir, sizeof(dir), "/proc/%d", (int)pid);
    MF_ENSURE(n > 0 && (size_t)n < sizeof(dir), MF_ERR_INTERNAL);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0 && errno != ENOSYS) {
        return MF_RES_OK; /* gone: attestation will refuse it anyway */
    }
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (dirfd >= 0 && fstatat(dirfd, "exe", &st, 0) == 0 &&
        (pidfd < 0 || syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0)) {
        out->exe_dev = st.st_dev;
        out->exe_ino = st.st_ino;
        out->exe_ok = true;
    }
    if (dirfd >= 0) {
        close(dirfd);
    }
    if (pidfd >= 0) {
        close(pidfd);
    }
    return MF_RES_OK;
}

/* see agent_attest.h */
mf_res agent_attest_listener(int fd)
{
    int one = 1;
    MF_ENSURE_MSG(setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) == 0, MF_ERR_IO,
                  "SO_PASSCRED: %s", strerror(errno));
    return MF_RES_OK;
}

/* see agent_attest.h */
mf_res agent_attest_stamp(int fd, struct agent_conn_stamp *out)
{
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    int on = 0;
    socklen_t ol = sizeof(on);
    MF_ENSURE_MSG(getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cl == sizeof(cred),
                  MF_ERR_IO, "SO_PEERCRED: %s", strerror(errno));
    /* inherited from the listener at accept: turning it on only now would
     * leave bytes written since the accept without their writer (and
     * agent_attest_recv would refuse them) */
    MF_ENSURE_MSG(getsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, &ol) == 0 && on != 0, MF_ERR_IO,
                  "SO_PASSCRED is off on the accepted socket (see agent_attest_listener)");
    return agent_attest_stamp_pid(cred.pid, out);
}

/* see agent_attest.h */
ssize_t agent_attest_recv(int fd, const struct agent_conn_stamp *st, void *buf, size_t len,
                          int flags)
{
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(struct ucred))];
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr m = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = ctl.space,
        .msg_controllen = sizeof(ctl.space),
    };
    ssize_t n = recvmsg(fd, &m, flags | MSG_CMSG_CLOEXEC);
    if (n <= 0) {
        return n;
    }
    pid_t writer = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
            c->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
            struct ucred u;
            memcpy(&u, CMSG_DATA(c), sizeof(u));
            writer = u.pid;
        }
    }
    if (st == NULL || writer <= 0 || writer != st->pid) {
        /* a process that shares the socket with the one that connected
         * (a forked helper): it would be answered as that process */
        mf_log_info("bytes on the Workload API connection of pid %d were written by pid %d: "
                    "connection refused",
                    st != NULL ? (int)st->pid : 0, (int)writer);
        errno = EACCES;
        return -1;
    }
    return n;
}

/* Strict unsigned decimal of exactly len bytes. */
static mf_res parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    MF_ENSURE(len > 0 && len <= 20, MF_ERR_IO);
    for (size_t i = 0; i < len; i++) {
        MF_ENSURE(s[i] >= '0' && s[i] <= '9', MF_ERR_IO);
        MF_ENSURE(!__builtin_mul_overflow(v, 10u, &v), MF_ERR_IO);
        MF_ENSURE(!__builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v), MF_ERR_IO);
    }
    *out = v;
    return MF_RES_OK;
}

/* see agent_attest.h */
mf_res agent_attest_parse_starttime(const char *stat, size_t len, uint64_t *out)
{
    MF_ENSURE_REF(stat);
    MF_ENSURE_REF(out);
    *out = 0;
    /* "pid (comm) state ppid ...": comm may contain ") ", so the fields
     * start after the last ')' */
    size_t i = len;
    while (i > 0 && stat[i - 1] != ')') {
        i--;
    }
    MF_ENSURE_MSG(i > 0, MF_ERR_IO, "no ')' in /proc stat");
    /* field 3 is the first after ") "; we want field 22 */
    int field = 2;
    size_t p = i;
    while (p < len) {
        while (p < len && stat[p] == ' ') {
            p++;
        }
        size_t start = p;
        while (p < len && stat[p] != ' ' && stat[p] != '\n') {
            p++;
        }
        if (p == start) {
            break;
        }
        field++;
        if (field == 22) {
            return parse_u64(stat + start, p - start, out);
        }
    }
    MF_BAIL_MSG(MF_ERR_IO, "/proc stat has fewer than 22 fields");
}

/* Reads a whole /proc file relative to dirfd. */
static mf_res read_at(int dirfd, const char *name, struct mf_buf *out)
{
    mf_res rc;
    char chunk[4096];
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        MF_BAIL_MSG(errno == ESRCH || errno == ENOENT ? MF_ERR_AUTH : MF_ERR_IO,
                    "open /proc/<pid>/%s: %s", name, strerror(errno));
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        MF_ENSURE_OUT_MSG(n >= 0, errno == ESRCH ? MF_ERR_AUTH : MF_ERR_IO,
                          "read /proc/<pid>/%s: %s", name, strerror(errno));
        if (n == 0) {
            break;
        }
        MF_TRY_OUT(mf_buf_append(out, chunk, (size_t)n));
    }
    rc = MF_RES_OK;
out:
    close(fd);
    return rc;
}

/* Finds the line "key:\t..." in a status text and returns its value part. */
static const char *status_line(const char *text, const char *key, size_t *len)
{
    size_t klen = strlen(key);
    const char *p = text;
    while (p != NULL && *p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t l = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (l > klen && memcmp(p, key, klen) == 0 && p[klen] == ':') {
            *len = l - klen - 1;
            return p + klen + 1;
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    return NULL;
}

/* The n-th (0-based) whitespace-separated number in s[0..len). */
static mf_res nth_number(const char *s, size_t len, int n, uint64_t *out)
{
    size_t p = 0;
    for (int k = 0;; k++) {
        while (p < len && (s[p] == ' ' || s[p] == '\t')) {
            p++;
        }
        size_t start = p;
        while (p < len && s[p] != ' ' && s[p] != '\t') {
            p++;
        }
        MF_ENSURE(p > start, MF_ERR_IO);
        if (k == n) {
            return parse_u64(s + start, p - start, out);
        }
    }
}

struct sel_list {
    struct mf_selector *v;
    size_t n;
    size_t cap;
};

static mf_res sel_add(struct sel_list *l, enum mf_sel_kind kind, const char *value)
{
    struct mf_selector s = {0};
    mf_res r = mf_selector_make(kind, value, &s);
    if (!mf_ok(r)) {
        /* a name the selector grammar cannot express (say, a user name with
         * '@') simply yields no selector: entries cannot name it either */
        mf_log_debug("no %s selector for this workload", mf_selector_kind_name(kind));
        return MF_RES_OK;
    }
    if (l->n == l->cap) {
        size_t ncap = l->cap == 0 ? 16 : l->cap * 2;
        size_t bytes;
        if (ncap > SELS_MAX || !mf_mul_size(ncap, sizeof(*l->v), &bytes)) {
            mf_selector_cleanup(&s);
            MF_BAIL(MF_ERR_OVERFLOW);
        }
        struct mf_selector *nv = realloc(l->v, bytes);
        if (nv == NULL) {
            mf_selector_cleanup(&s);
            MF_BAIL(MF_ERR_NOMEM);
        }
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = s;
    return MF_RES_OK;
}

static mf_res sel_add_u64(struct sel_list *l, enum mf_sel_kind kind, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
    MF_ENSURE(n > 0 && (size_t)n < sizeof(num), MF_ERR_INTERNAL);
    return sel_add(l, kind, num);
}

static mf_res add_names(struct sel_list *l, uid_t uid, gid_t gid)
{
    mf_res rc;
    long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
    size_t bufsz = sz > 0 && sz < 1024 * 1024 ? (size_t)sz : 16384;
    char *buf = malloc(bufsz);
    MF_TRY_PTR(buf, MF_ERR_NOMEM);
    struct passwd pw, *pwp = NULL;
    if (getpwuid_r(uid, &pw, buf, bufsz, &pwp) == 0 && pwp != NULL) {
        MF_TRY_OUT(sel_add(l, MF_SEL_UNIX_USER, pwp->pw_name));
    }
    struct group gr, *grp = NULL;
    if (getgrgid_r(gid, &gr, buf, bufsz, &grp) == 0 && grp != NULL) {
        MF_TRY_OUT(sel_add(l, MF_SEL_UNIX_GROUP, grp->gr_name));
    }
    rc = MF_RES_OK;
out:
    free(buf);
    return rc;
}

/* Digest of the executable open at fd, through the cache. Sets *have to
 * false (and succeeds) when the file is over the size limit. */
static mf_res exe_digest(struct agent_attestor *a, int fd, uint8_t out[32], bool *have)
{
    mf_res rc;
    struct stat st;
    *have = false;
    MF_ENSURE(fstat(fd, &st) == 0, MF_ERR_IO);
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > a->hash_max) {
        return MF_RES_OK;
    }
    int64_t mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;

    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < AGENT_DIGEST_SLOTS; i++) {
        struct agent_digest_slot *s = &a->slots[i];
        if (s->used != 0 && s->dev == st.st_dev && s->ino == st.st_ino && s->size == st.st_size &&
            s->mtime_ns == mtime_ns) {
            s->used = ++a->clock;
            memcpy(out, s->digest, 32);
            pthread_mutex_unlock(&a->mu);
            *have = true;
            return MF_RES_OK;
        }
    }
    pthread_mutex_unlock(&a->mu);

    /* a file rewritten in place keeps dev/ino but changes size or mtime;
     * hashing a map of it and caching by the fstat taken above is safe: a
     * change during hashing alters the mtime, so the next lookup misses */
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    MF_ENSURE(map != MAP_FAILED, MF_ERR_IO);
    rc = mf_sha256(map, (size_t)st.st_size, out);
    munmap(map, (size_t)st.st_size);
    MF_TRY(rc);

    pthread_mutex_lock(&a->mu);
    struct agent_digest_slot *victim = &a->slots[0];
    for (size_t i = 0; i < AGENT_DIGEST_SLOTS; i++) {
        if (a->slots[i].used < victim->used) {
            victim = &a->slots[i];
        }
    }
    victim->dev = st.st_dev;
    victim->ino = st.st_ino;
    victim->size = st.st_size;
    victim->mtime_ns = mtime_ns;
    victim->used = ++a->clock;
    memcpy(victim->digest, out, 32);
    a->hashes++;
    pthread_mutex_unlock(&a->mu);
    *have = true;
    return MF_RES_OK;
}

static int cmp_sel(const void *x, const void *y)
{
    return mf_selector_cmp(x, y);
}

/* The executable pid runs now (st, from /proc/<pid>/exe) must be the one
 * stamped at accept. */
static mf_res same_exe(const struct agent_conn_stamp *stamp, const struct stat *st, pid_t pid)
{
    MF_ENSURE_MSG(stamp->exe_ok && st->st_dev == stamp->exe_dev && st->st_ino == stamp->exe_ino,
                  MF_ERR_AUTH, "pid %d: the executable changed since the connection was made",
                  (int)pid);
    return MF_RES_OK;
}

/* The full attestation. With keep (empty on entry), a success also hands
 * over the pinned process and what the cheap re-checks compare
 * (agent_attest_cache); keep stays empty without pidfds. */
static mf_res attest_full(struct agent_attestor *a, pid_t pid, uid_t uid, gid_t gid,
                          const struct agent_conn_stamp *stamp, struct agent_workload *out,
                          struct agent_attest_cache *keep)
{
    mf_res rc;
    int pidfd = -1, dirfd = -1, exefd = -1;
    struct mf_buf stat1, stat2, status;
    struct sel_list l = {0};
    uint64_t start1 = 0, start2 = 0, v = 0;
    char dir[64];
    struct stat owner, exe_kept;
    bool exe_seen = false;
    memset(&exe_kept, 0, sizeof(exe_kept));

    MF_ENSURE_REF(a);
    MF_ENSURE_REF(stamp);
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    MF_ENSURE(pid > 0, MF_ERR_AUTH);
    MF_ENSURE_MSG(stamp->pid == pid, MF_ERR_AUTH, "pid %d has no stamp of its connection",
                  (int)pid);
    uint64_t connect_ticks = stamp->ticks;
    mf_buf_init(&stat1, PROC_FILE_MAX, 0);
    mf_buf_init(&stat2, PROC_FILE_MAX, 0);
    mf_buf_init(&status, PROC_FILE_MAX, 0);

    /* 1. pin the process. Without pidfds (kernels before 5.3) we fall back
     * to the open /proc/<pid> directory plus the start-time checks below. */
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0 && errno != ENOSYS) {
        MF_BAIL_OUT(MF_ERR_AUTH, "pid %d is gone: %s", (int)pid, strerror(errno));
    }
    int n = snprintf(dir, sizeof(dir), "/proc/%d", (int)pid);
    MF_ENSURE_OUT(n > 0 && (size_t)n < sizeof(dir), MF_ERR_INTERNAL);
    dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    MF_ENSURE_OUT_MSG(dirfd >= 0, MF_ERR_AUTH, "open %s: %s", dir, strerror(errno));
    /* the owner before the credentials are read: a change after this one
     * shows in the next cheap check */
    MF_ENSURE_OUT_MSG(fstat(dirfd, &owner) == 0, MF_ERR_AUTH, "stat %s: %s", dir, strerror(errno));

    /* 2. the start time: the process must be older than the connection */
    MF_TRY_OUT(read_at(dirfd, "stat", &stat1));
    MF_TRY_OUT(agent_attest_parse_starttime(mf_buf_cstr(&stat1), stat1.len, &start1));
    MF_ENSURE_OUT_MSG(connect_ticks == 0 || start1 <= connect_ticks, MF_ERR_AUTH,
                      "pid %d started after the connection (recycled pid)", (int)pid);

    /* 3. credentials, which must still be the ones the socket reported */
    MF_TRY_OUT(read_at(dirfd, "status", &status));
    size_t len = 0;
    const char *line = status_line(mf_buf_cstr(&status), "Uid", &len);
    MF_ENSURE_OUT(line != NULL, MF_ERR_IO);
    MF_TRY_OUT(nth_number(line, len, 1, &v));
    MF_ENSURE_OUT_MSG(v == (uint64_t)uid, MF_ERR_AUTH, "pid %d changed its uid", (int)pid);
    line = status_line(mf_buf_cstr(&status), "Gid", &len);
    MF_ENSURE_OUT(line != NULL, MF_ERR_IO);
    MF_TRY_OUT(nth_number(line, len, 1, &v));
    MF_ENSURE_OUT_MSG(v == (uint64_t)gid, MF_ERR_AUTH, "pid %d changed its gid", (int)pid);

    MF_TRY_OUT(sel_add_u64(&l, MF_SEL_UNIX_UID, uid));
    MF_TRY_OUT(sel_add_u64(&l, MF_SEL_UNIX_GID, gid));
    MF_TRY_OUT(add_names(&l, uid, gid));
    line = status_line(mf_buf_cstr(&status), "Groups", &len);
    if (line != NULL) {
        for (int k = 0;; k++) {
            mf_res r = nth_number(line, len, k, &v);
            if (!mf_ok(r)) {
                break; /* end of the list */
            }
            MF_TRY_OUT(sel_add_u64(&l, MF_SEL_UNIX_SUPPLEMENTARY_GID, v));
        }
    }

    /* 4. the executable: path and digest. An agent without the right to
     * look at another user's exe (not root) just yields fewer selectors.
     * It must be the executable stamped at accept: a process that connected
     * and then exec'd a trusted binary may have left the socket to a helper
     * (agent_attest.h). It is compared before the path is read and again on
     * the file that is hashed, so an exec in between is caught too. */
    struct stat xst;
    if (fstatat(dirfd, "exe", &xst, 0) == 0) {
        MF_TRY_OUT(same_exe(stamp, &xst, pid));
        exe_seen = true;
        exe_kept = xst;
        char path[PATH_MAX];
        ssize_t pl = readlinkat(dirfd, "exe", path, sizeof(path) - 1);
        if (pl > 0) {
            path[pl] = '\0';
            static const char deleted[] = " (deleted)";
            size_t dl = sizeof(deleted) - 1;
            if (!((size_t)pl > dl && memcmp(path + pl - (ssize_t)dl, deleted, dl) == 0)) {
                MF_TRY_OUT(sel_add(&l, MF_SEL_UNIX_PATH, path));
            }
        }
        exefd = openat(dirfd, "exe", O_RDONLY | O_CLOEXEC);
        if (exefd >= 0) {
            uint8_t digest[32];
            bool have = false;
            MF_ENSURE_OUT(fstat(exefd, &xst) == 0, MF_ERR_IO);
            MF_TRY_OUT(same_exe(stamp, &xst, pid));
            exe_kept = xst; /* the file hashed */
            MF_TRY_OUT(exe_digest(a, exefd, digest, &have));
            if (have) {
                char hex[65];
                mf_hex(digest, sizeof(digest), hex);
                MF_TRY_OUT(sel_add(&l, MF_SEL_UNIX_SHA256, hex));
            }
        }
    }

    /* 5. still the same process? The pidfd names one process for its whole
     * life; if it is alive the pid was not reused, so /proc/<pid> (opened
     * after the pidfd) was that process. The start time guards kernels
     * without pidfds. */
    if (pidfd >= 0) {
        MF_ENSURE_OUT_MSG(syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0, MF_ERR_AUTH,
                          "pid %d exited during attestation", (int)pid);
    }
    MF_TRY_OUT(read_at(dirfd, "stat", &stat2));
    MF_TRY_OUT(agent_attest_parse_starttime(mf_buf_cstr(&stat2), stat2.len, &start2));
    MF_ENSURE_OUT_MSG(start1 == start2, MF_ERR_AUTH, "pid %d was recycled", (int)pid);

    /* sorted and without duplicates, so that callers can compare sets */
    if (l.n > 1) {
        qsort(l.v, l.n, sizeof(*l.v), cmp_sel);
        size_t w = 1;
        for (size_t i = 1; i < l.n; i++) {
            if (mf_selector_cmp(&l.v[i], &l.v[w - 1]) == 0) {
                mf_selector_cleanup(&l.v[i]);
            } else {
                l.v[w++] = l.v[i];
            }
        }
        l.n = w;
    }
    out->pid = pid;
    out->uid = uid;
    out->gid = gid;
    out->sels = l.v;
    out->n_sels = l.n;
    l.v = NULL;
    l.n = 0;
    __atomic_add_fetch(&a->full, 1, __ATOMIC_RELAXED);
    if (keep != NULL && pidfd >= 0) {
        keep->pidfd = pidfd;
        keep->dirfd = dirfd;
        pidfd = -1;
        dirfd = -1;
        keep->exe_seen = exe_seen;
        if (exe_seen) {
            keep->exe_dev = exe_kept.st_dev;
            keep->exe_ino = exe_kept.st_ino;
            keep->exe_size = exe_kept.st_size;
            keep->exe_mtime_ns =
                (int64_t)exe_kept.st_mtim.tv_sec * 1000000000 + exe_kept.st_mtim.tv_nsec;
        }
        keep->owner_uid = owner.st_uid;
        keep->owner_gid = owner.st_gid;
        keep->valid = true;
    }
    rc = MF_RES_OK;
out:
    mf_selectors_free(l.v, l.n);
    if (exefd >= 0) {
        close(exefd);
    }
    if (dirfd >= 0) {
        close(dirfd);
    }
    if (pidfd >= 0) {
        close(pidfd);
    }
    mf_buf_cleanup(&stat1);
    mf_buf_cleanup(&stat2);
    mf_buf_cleanup(&status);
    return rc;
}

/* see agent_attest.h */
mf_res agent_attest_pid(struct agent_attestor *a, pid_t pid, uid_t uid, gid_t gid,
                        const struct agent_conn_stamp *stamp, struct agent_workload *out)
{
    return attest_full(a, pid, uid, gid, stamp, out, NULL);
}

/* see agent_attest.h */
mf_res agent_workload_copy(const struct agent_workload *src, struct agent_workload *out)
{
    MF_ENSURE_REF(src);
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    if (src->n_sels > 0) {
        out->sels = calloc(src->n_sels, sizeof(*out->sels));
        MF_TRY_PTR(out->sels, MF_ERR_NOMEM);
        for (size_t i = 0; i < src->n_sels; i++) {
            mf_res r = mf_selector_copy(&src->sels[i], &out->sels[i]);
            if (!mf_ok(r)) {
                agent_workload_cleanup(out);
                return r;
            }
            out->n_sels++;
        }
    }
    out->pid = src->pid;
    out->uid = src->uid;
    out->gid = src->gid;
    return MF_RES_OK;
}

/* see agent_attest.h */
void agent_attest_cache_cleanup(struct agent_attest_cache *c)
{
    if (c == NULL) {
        return;
    }
    if (c->valid) {
        close(c->pidfd);
        close(c->dirfd);
        agent_workload_cleanup(&c->w);
    }
    memset(c, 0, sizeof(*c));
}

/* The cheap re-check of a kept attestation (agent_attest.h): true when
 * nothing that attestation relied on has changed. */
static bool cache_holds(const struct agent_attest_cache *c, pid_t pid, uid_t uid, gid_t gid,
                        const struct agent_conn_stamp *stamp)
{
    struct stat st;
    if (!c->valid || c->w.pid != pid || c->w.uid != uid || c->w.gid != gid || stamp->pid != pid) {
        return false;
    }
    if (syscall(SYS_pidfd_send_signal, c->pidfd, 0, NULL, 0) != 0) {
        return false; /* gone: the full attestation says so */
    }
    bool seen = fstatat(c->dirfd, "exe", &st, 0) == 0;
    if (seen != c->exe_seen) {
        return false;
    }
    if (seen) {
        int64_t mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        if (st.st_dev != c->exe_dev || st.st_ino != c->exe_ino || st.st_size != c->exe_size ||
            mtime_ns != c->exe_mtime_ns) {
            return false;
        }
    }
    return fstat(c->dirfd, &st) == 0 && st.st_uid == c->owner_uid && st.st_gid == c->owner_gid;
}

/* see agent_attest.h */
mf_res agent_attest_conn(struct agent_attestor *a, struct agent_attest_cache *c, pid_t pid,
                         uid_t uid, gid_t gid, const struct agent_conn_stamp *st,
                         struct agent_workload *out)
{
    MF_ENSURE_REF(a);
    MF_ENSURE_REF(c);
    MF_ENSURE_REF(st);
    MF_ENSURE_REF(out);
    memset(out, 0, sizeof(*out));
    if (cache_holds(c, pid, uid, gid, st)) {
        __atomic_add_fetch(&a->reused, 1, __ATOMIC_RELAXED);
        return agent_workload_copy(&c->w, out);
    }
    agent_attest_cache_cleanup(c);
    struct agent_attest_cache fresh;
    memset(&fresh, 0, sizeof(fresh));
    MF_TRY(attest_full(a, pid, uid, gid, st, out, &fresh));
    if (fresh.valid) {
        mf_res r = agent_workload_copy(out, &fresh.w);
        if (!mf_ok(r)) {
            agent_attest_cache_cleanup(&fresh); /* serve this one, keep nothing */
            return MF_RES_OK;
        }
    }
    *c = fresh;
    return MF_RES_OK;
}
