/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_gate: admission of agent API connections. See ca_gate.h.
 *
 * Invariants (all under g->mu): every accepted socket is counted once in
 * its address's slot of g->ips from accept until it is closed, by the gate
 * (pool) or by MHD (the "closed" notification); n_live <= max_conns; every
 * record in g->live is a connection handed to MHD whose "closed"
 * notification has not come yet, and its fd is open until that
 * notification (MHD closes the socket only after notifying), so shutting
 * it down never hits another socket. The pool (g->pool) belongs to the
 * accept thread alone.
 */
#include "ca/ca_gate.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "api/core/mf_log.h"
#include "api/core/mf_time.h"

#define AGENT_SLOTS  4096 /* known agent addresses (direct-mapped) */
#define ACCEPT_BURST 256  /* accepts per loop turn, so expiry keeps up */
#define RETRY_MS     50   /* a ready connection waiting for a slot */
#define FD_PAUSE_MS  100  /* out of descriptors and nothing to evict */
#define LOG_EVERY_MS 1000
#define FD_HEADROOM  256 /* descriptors left for the store, keys, admin */

struct ip_key {
    uint8_t b[16]; /* IPv6, or IPv4 as ::ffff:a.b.c.d */
};

struct ip_slot {
    struct ip_key k;
    unsigned n; /* 0: empty slot */
};

/* A connection handed to MHD. */
struct conn_rec {
    int fd;
    struct ip_key ip;
    int64_t deadline_ms; /* authenticate by then (monotonic) */
    bool started;        /* MHD reported it */
    bool authed;
    bool killed; /* shut down at its deadline */
    size_t idx;  /* in g->live */
};

/* A connection the gate still holds. */
struct waiting {
    int fd;     /* -1: a hole, compacted away */
    bool ready; /* its first bytes arrived */
    struct ip_key ip;
    int64_t deadline_ms;
    struct sockaddr_storage addr;
    socklen_t alen;
};

struct agent_addr {
    struct ip_key k;
    int64_t at_ms; /* 0: empty */
};

struct ca_gate {
    struct ca_gate_cfg cfg;
    unsigned unauth_max; /* max_conns - reserve */
    unsigned mhd_limit;
    uint64_t seed; /* keys the address hash: an attacker cannot aim at one chain */
    int listen_fd;
    int wake_fd;
    struct MHD_Daemon *d;
    pthread_t thr;
    bool running;
    int stop; /* atomic */

    pthread_mutex_t mu; /* protects ips, live, counters, agents */
    struct ip_slot *ips;
    size_t ip_mask;
    struct conn_rec **live;
    size_t n_live;
    unsigned n_unauth;    /* live and not authenticated */
    unsigned n_unstarted; /* live and not yet reported by MHD */
    struct agent_addr *agents;

    /* accept thread only */
    struct waiting *pool;
    size_t pool_cap, n_pool, n_held;
    struct pollfd *pfd;
    int64_t last_log_ms;
    unsigned refused, evicted, expired;
};

/* ---- addresses -------------------------------------------------------- */

static void key_of(const struct sockaddr_storage *ss, struct ip_key *k)
{
    memset(k, 0, sizeof(*k));
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)ss;
        k->b[10] = 0xff;
        k->b[11] = 0xff;
        memcpy(&k->b[12], &s4->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)ss;
        memcpy(k->b, &s6->sin6_addr, 16);
    }
}

static size_t key_hash(const struct ca_gate *g, const struct ip_key *k)
{
    uint64_t h = 0xcbf29ce484222325ull ^ g->seed;
    for (size_t i = 0; i < sizeof(k->b); i++) {
        h = (h ^ k->b[i]) * 0x100000001b3ull;
    }
    return (size_t)(h ^ (h >> 29));
}

/* Open addressing, linear probing; the table has twice the slots of the
 * most addresses that can be counted at once, so a free slot exists. */
static size_t ip_find(const struct ca_gate *g, const struct ip_key *k)
{
    size_t i = key_hash(g, k) & g->ip_mask;
    while (g->ips[i].n != 0 && memcmp(&g->ips[i].k, k, sizeof(*k)) != 0) {
        i = (i + 1) & g->ip_mask;
    }
    return i;
}

static unsigned ip_count(const struct ca_gate *g, const struct ip_key *k)
{
    return g->ips[ip_find(g, k)].n;
}

static void ip_inc(struct ca_gate *g, const struct ip_key *k)
{
    struct ip_slot *s = &g->ips[ip_find(g, k)];
    s->k = *k;
    s->n++;
}

static void ip_dec(struct ca_gate *g, const struct ip_key *k)
{
    size_t i = ip_find(g, k);
    if (g->ips[i].n == 0) {
        return; /* not counted: cannot happen, but never underflow */
    }
    if (--g->ips[i].n > 0) {
        return;
    }
    /* Backward-shift deletion keeps every probe chain unbroken without
     * tombstones: move up each later entry whose home slot is not in
     * (i, j]. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & g->ip_mask;
        if (g->ips[j].n == 0) {
            break;
        }
        size_t h = key_hash(g, &g->ips[j].k) & g->ip_mask;
        bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (stays) {
            continue;
        }
        g->ips[i] = g->ips[j];
        i = j;
    }
    g->ips[i].n = 0;
}

static bool agent_known(const struct ca_gate *g, const struct ip_key *k, int64_t now)
{
    const struct agent_addr *a = &g->agents[key_hash(g, k) & (AGENT_SLOTS - 1)];
    return a->at_ms != 0 && memcmp(&a->k, k, sizeof(*k)) == 0 &&
           now - a->at_ms < (int64_t)CA_GATE_AGENT_MEMORY_S * 1000;
}

static void wake(struct ca_gate *g)
{
    uint64_t one = 1;
    (void)!write(g->wake_fd, &one, sizeof(one));
}

/* ---- records of connections in MHD (under g->mu) ---------------------- */

static void live_remove(struct ca_gate *g, struct conn_rec *r)
{
    size_t i = r->idx;
    g->live[i] = g->live[--g->n_live];
    g->live[i]->idx = i;
    if (!r->authed) {
        g->n_unauth--;
    }
    if (!r->started) {
        g->n_unstarted--;
    }
    ip_dec(g, &r->ip);
}

/* Shuts down the unauthenticated connections past their deadline; returns
 * the next deadline among the others, or -1. */
static int64_t expire_live(struct ca_gate *g, int64_t now)
{
    int64_t next = -1;
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < g->n_live; i++) {
        struct conn_rec *r = g->live[i];
        if (r->authed || r->killed) {
            continue;
        }
        if (r->deadline_ms <= now) {
            /* MHD's thread sees end-of-file, fails the handshake or the
             * read, and closes the connection itself */
            (void)shutdown(r->fd, SHUT_RDWR);
            r->killed = true;
            g->expired++;
        } else if (next < 0 || r->deadline_ms < next) {
            next = r->deadline_ms;
        }
    }
    pthread_mutex_unlock(&g->mu);
    return next;
}

/* see ca_gate.h */
void ca_gate_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                    enum MHD_ConnectionNotificationCode toe)
{
    struct ca_gate *g = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = NULL;
        if (ci == NULL) {
            return;
        }
        pthread_mutex_lock(&g->mu);
        for (size_t i = 0; i < g->n_live; i++) {
            struct conn_rec *r = g->live[i];
            if (r->fd == (int)ci->connect_fd && !r->started) {
                r->started = true;
                g->n_unstarted--;
                *socket_context = r;
                break;
            }
        }
        pthread_mutex_unlock(&g->mu);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct conn_rec *r = *socket_context;
        if (r == NULL) {
            return;
        }
        pthread_mutex_lock(&g->mu);
        live_remove(g, r);
        pthread_mutex_unlock(&g->mu);
        free(r);
        *socket_context = NULL;
        wake(g); /* a slot is free: a waiting connection may go in */
    }
}

/* see ca_gate.h */
void ca_gate_authenticated(struct ca_gate *g, struct MHD_Connection *conn)
{
    if (g == NULL) {
        return;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_rec *r = ci != NULL ? ci->socket_context : NULL;
    if (r == NULL) {
        return;
    }
    bool moved = false;
    pthread_mutex_lock(&g->mu);
    if (!r->authed) {
        r->authed = true;
        g->n_unauth--;
        struct agent_addr *a = &g->agents[key_hash(g, &r->ip) & (AGENT_SLOTS - 1)];
        a->k = r->ip;
        a->at_ms = mf_mono_ms();
        moved = true;
    }
    pthread_mutex_unlock(&g->mu);
    if (moved) {
        wake(g);
    }
}

/* ---- the pool (accept thread) ----------------------------------------- */

static void drop(struct ca_gate *g, struct waiting *w)
{
    close(w->fd);
    w->fd = -1;
    g->n_held--;
    pthread_mutex_lock(&g->mu);
    ip_dec(g, &w->ip);
    pthread_mutex_unlock(&g->mu);
}

static void compact(struct ca_gate *g)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n_pool; i++) {
        if (g->pool[i].fd >= 0) {
            g->pool[n++] = g->pool[i];
        }
    }
    g->n_pool = n;
}

static bool has_data(int fd)
{
    char c;
    return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* Closes the oldest held connection that has sent nothing (of address ip
 * when not NULL; also one that has, when ready_too). */
static bool evict_oldest(struct ca_gate *g, const struct ip_key *ip, bool ready_too)
{
    for (size_t i = 0; i < g->n_pool; i++) {
        struct waiting *w = &g->pool[i];
        if (w->fd < 0 || (w->ready && !ready_too) ||
            (ip != NULL && memcmp(&w->ip, ip, sizeof(*ip)) != 0)) {
            continue;
        }
        if (!w->ready && has_data(w->fd)) {
            /* its ClientHello came in since the last poll: a real client,
             * most likely, and no longer idle */
            w->ready = true;
            if (!ready_too) {
                continue;
            }
        }
        drop(g, w);
        g->evicted++;
        return true;
    }
    return false;
}

/* Hands a ready connection to MHD if a slot is open to it. True when the
 * gate no longer holds it. */
static bool try_hand(struct ca_gate *g, struct waiting *w, int64_t now)
{
    /* read outside g->mu: MHD takes its own locks here */
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(g->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    unsigned mhd_now = di != NULL ? di->num_connections : 0;
    struct conn_rec *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return false;
    }
    pthread_mutex_lock(&g->mu);
    /* MHD counts a connection until its thread is cleaned up, a little
     * after the "closed" notification, and not before it takes one handed
     * over: keep both clear of its limit */
    bool room = g->n_live < g->cfg.max_conns &&
                (size_t)mhd_now + g->n_unstarted + 1 < g->mhd_limit &&
                (g->n_unauth < g->unauth_max || agent_known(g, &w->ip, now));
    if (!room) {
        pthread_mutex_unlock(&g->mu);
        free(r);
        return false;
    }
    /* A record for the same fd that MHD never reported: MHD dropped that
     * connection without telling (its fd is free again), forget it. */
    for (size_t i = 0; i < g->n_live; i++) {
        if (g->live[i]->fd == w->fd && !g->live[i]->started) {
            struct conn_rec *old = g->live[i];
            live_remove(g, old);
            free(old);
            break;
        }
    }
    r->fd = w->fd;
    r->ip = w->ip;
    r->deadline_ms = w->deadline_ms;
    r->idx = g->n_live;
    g->live[g->n_live++] = r;
    g->n_unauth++;
    g->n_unstarted++;
    pthread_mutex_unlock(&g->mu);
    int fd = w->fd;
    w->fd = -1;
    g->n_held--;
    if (MHD_add_connection(g->d, fd, (const struct sockaddr *)&w->addr, w->alen) != MHD_YES) {
        /* MHD closed the socket */
        pthread_mutex_lock(&g->mu);
        bool ours = r->idx < g->n_live && g->live[r->idx] == r && !r->started;
        if (ours) {
            live_remove(g, r);
        }
        pthread_mutex_unlock(&g->mu);
        if (ours) {
            free(r);
        }
        mf_log_warn("the agent API could not take a connection");
    }
    return true;
}

static void admit_ready(struct ca_gate *g, int64_t now)
{
    for (size_t i = 0; i < g->n_pool; i++) {
        struct waiting *w = &g->pool[i];
        if (w->fd >= 0 && w->ready) {
            (void)try_hand(g, w, now);
        }
    }
}

static void accept_burst(struct ca_gate *g, int64_t now, int64_t *pause_until)
{
    for (int k = 0; k < ACCEPT_BURST; k++) {
        struct waiting w;
        memset(&w, 0, sizeof(w));
        w.alen = sizeof(w.addr);
        w.fd = accept4(g->listen_fd, (struct sockaddr *)&w.addr, &w.alen,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (w.fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* out of descriptors: the oldest idle connection pays */
                if (evict_oldest(g, NULL, false)) {
                    continue;
                }
                *pause_until = now + FD_PAUSE_MS;
            }
            return;
        }
        key_of(&w.addr, &w.ip);
        w.deadline_ms = now + g->cfg.deadline_s * 1000;
        pthread_mutex_lock(&g->mu);
        unsigned n = ip_count(g, &w.ip);
        pthread_mutex_unlock(&g->mu);
        /* at its address's limit: the newcomer replaces that address's
         * oldest idle connection, or is refused when all are busy */
        if (n >= g->cfg.per_ip && !evict_oldest(g, &w.ip, false)) {
            close(w.fd);
            g->refused++;
            continue;
        }
        if (g->n_held >= g->pool_cap && !evict_oldest(g, NULL, false) &&
            !evict_oldest(g, NULL, true)) {
            close(w.fd);
            g->refused++;
            continue;
        }
        if (g->n_pool == g->pool_cap) {
            compact(g);
        }
        pthread_mutex_lock(&g->mu);
        ip_inc(g, &w.ip);
        pthread_mutex_unlock(&g->mu);
        g->pool[g->n_pool++] = w;
        g->n_held++;
    }
}

static void log_pressure(struct ca_gate *g, int64_t now)
{
    if (g->refused + g->evicted + g->expired == 0 || now - g->last_log_ms < LOG_EVERY_MS) {
        return;
    }
    mf_log_warn("agent API under connection pressure: %u refused (per-address limit or full), "
                "%u idle dropped for newcomers, %u unauthenticated past the %llds deadline",
                g->refused, g->evicted, g->expired, (long long)g->cfg.deadline_s);
    g->refused = g->evicted = g->expired = 0;
    g->last_log_ms = now;
}

static void *gate_main(void *arg)
{
    struct ca_gate *g = arg;
    int64_t pause_until = 0;
    while (!__atomic_load_n(&g->stop, __ATOMIC_ACQUIRE)) {
        int64_t now = mf_mono_ms();
        admit_ready(g, now);
        compact(g);
        int64_t next = expire_live(g, now);
        bool listening = now >= pause_until;
        g->pfd[0] = (struct pollfd){.fd = listening ? g->listen_fd : -1, .events = POLLIN};
        g->pfd[1] = (struct pollfd){.fd = g->wake_fd, .events = POLLIN};
        if (!listening && (next < 0 || pause_until < next)) {
            next = pause_until;
        }
        for (size_t i = 0; i < g->n_pool; i++) {
            const struct waiting *w = &g->pool[i];
            if (w->ready && (next < 0 || now + RETRY_MS < next)) {
                /* MHD frees a slot for good a little after telling us:
                 * look again soon */
                next = now + RETRY_MS;
            }
            /* a ready one waits for a slot, not for data: only a hang-up
             * of it matters */
            g->pfd[2 + i] = (struct pollfd){.fd = w->fd, .events = w->ready ? 0 : POLLIN};
            if (next < 0 || w->deadline_ms < next) {
                next = w->deadline_ms;
            }
        }
        if (g->refused + g->evicted + g->expired > 0 &&
            (next < 0 || g->last_log_ms + LOG_EVERY_MS < next)) {
            next = g->last_log_ms + LOG_EVERY_MS;
        }
        int64_t wait = next < 0 ? -1 : (next > now ? next - now : 0);
        int pr = poll(g->pfd, (nfds_t)(2 + g->n_pool), (int)(wait > 60000 ? 60000 : wait));
        if (pr < 0 && errno != EINTR) {
            mf_log_err("poll on the agent API socket: %s", strerror(errno));
            break;
        }
        if (pr < 0) {
            continue;
        }
        if (g->pfd[1].revents & POLLIN) {
            uint64_t v;
            (void)!read(g->wake_fd, &v, sizeof(v));
        }
        now = mf_mono_ms();
        for (size_t i = 0; i < g->n_pool; i++) {
            struct waiting *w = &g->pool[i];
            short ev = g->pfd[2 + i].revents;
            if (w->fd < 0) {
                continue;
            }
            if (!w->ready && (ev & (POLLIN | POLLHUP | POLLERR))) {
                char c;
                ssize_t n = recv(w->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
                if (n > 0) {
                    w->ready = true;
                } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                    drop(g, w);
                    continue;
                }
            } else if (w->ready && (ev & (POLLHUP | POLLERR))) {
                drop(g, w);
                continue;
            }
            if (w->deadline_ms <= now) {
                drop(g, w);
                g->expired++;
            }
        }
        if (pr > 0 && (g->pfd[0].revents & POLLIN)) {
            accept_burst(g, now, &pause_until);
        }
        log_pressure(g, now);
    }
    for (size_t i = 0; i < g->n_pool; i++) {
        if (g->pool[i].fd >= 0) {
            drop(g, &g->pool[i]);
        }
    }
    g->n_pool = 0;
    return NULL;
}

/* ---- life cycle ------------------------------------------------------- */

/* see ca_gate.h */
unsigned ca_gate_mhd_limit(const struct ca_gate_cfg *cfg)
{
    return cfg->max_conns * 2 + 16;
}

/* see ca_gate.h */
mf_res ca_gate_new(const struct ca_gate_cfg *cfg, struct ca_gate **out)
{
    mf_res rc;
    MF_ENSURE_REF(cfg);
    MF_ENSURE_REF(out);
    *out = NULL;
    MF_ENSURE(cfg->max_conns >= 4 && cfg->per_ip >= 1 && cfg->deadline_s > 0, MF_ERR_USAGE_ARG);
    struct ca_gate *g = calloc(1, sizeof(*g));
    MF_TRY_PTR(g, MF_ERR_NOMEM);
    pthread_mutex_init(&g->mu, NULL);
    g->cfg = *cfg;
    g->listen_fd = -1;
    g->wake_fd = -1;
    g->unauth_max = cfg->max_conns - cfg->max_conns / CA_GATE_RESERVE_DIV;
    g->mhd_limit = ca_gate_mhd_limit(cfg);
    if (getrandom(&g->seed, sizeof(g->seed), 0) != (ssize_t)sizeof(g->seed)) {
        g->seed = (uint64_t)mf_mono_ms();
    }

    /* Held connections cost one descriptor each and nothing else: hold
     * as many as the descriptor limit allows beside MHD's. */
    struct rlimit rl;
    size_t nofile = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            (void)setrlimit(RLIMIT_NOFILE, &rl);
            (void)getrlimit(RLIMIT_NOFILE, &rl);
        }
        nofile =
            rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1u << 20 ? 1u << 20 : (size_t)rl.rlim_cur;
    }
    size_t spare =
        nofile > (size_t)g->mhd_limit + FD_HEADROOM ? nofile - g->mhd_limit - FD_HEADROOM : 0;
    g->pool_cap = spare < 16 ? 16 : (spare > CA_GATE_POOL_MAX ? CA_GATE_POOL_MAX : spare);

    size_t slots = 1;
    while (slots < 2 * (g->pool_cap + g->mhd_limit)) {
        slots <<= 1;
    }
    g->ip_mask = slots - 1;
    g->ips = calloc(slots, sizeof(*g->ips));
    g->live = calloc(cfg->max_conns, sizeof(*g->live));
    g->agents = calloc(AGENT_SLOTS, sizeof(*g->agents));
    g->pool = calloc(g->pool_cap, sizeof(*g->pool));
    g->pfd = calloc(g->pool_cap + 2, sizeof(*g->pfd));
    MF_ENSURE_OUT(g->ips != NULL && g->live != NULL && g->agents != NULL && g->pool != NULL &&
                      g->pfd != NULL,
                  MF_ERR_NOMEM);
    g->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    MF_ENSURE_OUT_MSG(g->wake_fd >= 0, MF_ERR_IO, "eventfd: %s", strerror(errno));
    *out = g;
    g = NULL;
    rc = MF_RES_OK;
out:
    ca_gate_free(g);
    return rc;
}

/* see ca_gate.h */
mf_res ca_gate_start(struct ca_gate *g, int listen_fd, struct MHD_Daemon *daemon)
{
    MF_ENSURE_REF(g);
    MF_ENSURE_REF(daemon);
    MF_ENSURE(!g->running && g->listen_fd < 0, MF_ERR_STATE);
    g->listen_fd = listen_fd;
    g->d = daemon;
    int fl = fcntl(listen_fd, F_GETFL);
    MF_ENSURE_MSG(fl >= 0 && fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) == 0, MF_ERR_IO,
                  "cannot make the agent API socket non-blocking: %s", strerror(errno));
    MF_ENSURE_MSG(pthread_create(&g->thr, NULL, gate_main, g) == 0, MF_ERR_INTERNAL,
                  "cannot start the agent API accept thread");
    g->running = true;
    mf_log_debug("agent API admission: %u connections (%u before authentication), %u per "
                 "address, %zu held while idle, %llds to authenticate",
                 g->cfg.max_conns, g->unauth_max, g->cfg.per_ip, g->pool_cap,
                 (long long)g->cfg.deadline_s);
    return MF_RES_OK;
}

/* see ca_gate.h */
void ca_gate_stop(struct ca_gate *g)
{
    if (g == NULL || !g->running) {
        return;
    }
    __atomic_store_n(&g->stop, 1, __ATOMIC_RELEASE);
    wake(g);
    pthread_join(g->thr, NULL);
    g->running = false;
}

/* see ca_gate.h */
void ca_gate_free(struct ca_gate *g)
{
    if (g == NULL) {
        return;
    }
    ca_gate_stop(g);
    if (g->listen_fd >= 0) {
        close(g->listen_fd);
    }
    if (g->wake_fd >= 0) {
        close(g->wake_fd);
    }
    /* after MHD stopped: what is left was never reported by MHD */
    for (size_t i = 0; g->live != NULL && i < g->n_live; i++) {
        free(g->live[i]);
    }
    free(g->live);
    free(g->ips);
    free(g->agents);
    free(g->pool);
    free(g->pfd);
    pthread_mutex_destroy(&g->mu);
    free(g);
}
