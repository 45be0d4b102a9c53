/*
 * pool.c: the pool handle's life (pool/pool.h): opening the data directory, restoring, starting the
 * peer API, discovery and tasks; stopping without blocking; the loop-lag figure; the block reads
 * the view asks for.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/files.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "pool/auth.h"
#include "pool/budget.h"
#include "pool/internal.h"

/*
 * Loop lag: called once per loop iteration (before the loop blocks in epoll). The iteration's wall
 * time minus the time it spent blocked in epoll (libuv's idle-time metric) is the time the loop
 * could not answer anything: callbacks, FUSE requests, HTTP, timers. Its maximum since start and
 * the count over 5 ms (the goal) are in the `peer` file. On a loaded machine that time is made of
 * three things, told apart by the thread's scheduler counters (/proc/thread-self/schedstat: time
 * on a CPU, time runnable but waiting for one):
 *  - the loop's own CPU time (`loop-cpu-max-ms`): what the code computed;
 *  - waiting for a CPU (the rest of `loop-busy-max-ms`, e.g. behind 18 sandboxes on two cores);
 *  - blocked in the kernel (`loop-blocked-max-ms`: busy minus CPU minus waiting): a blocking
 *    system call or a page fault that waited for the disk, which is what must not happen here.
 * Without schedstat, the CPU time comes from the thread's CPU clock and blocked is not told apart.
 */
static void loop_sched(pool_t *pool, uint64_t *cpu, uint64_t *wait)
{
    *cpu = *wait = 0;
    if (pool->lag_sched_fd >= 0) {
        char buf[96];
        ssize_t n = pread(pool->lag_sched_fd, buf, sizeof(buf) - 1, 0);
        unsigned long long c, w;
        if (n > 0) {
            buf[n] = '\0';
            if (sscanf(buf, "%llu %llu", &c, &w) == 2) {
                *cpu = c;
                *wait = w;
                return;
            }
        }
        close(pool->lag_sched_fd);
        pool->lag_sched_fd = -1;
    }
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        *cpu = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void lag_count(uint64_t v, uint64_t *max, uint64_t *over)
{
    if (v > *max)
        *max = v;
    if (v > 5000000)
        (*over)++;
}

static void on_loop_iteration(uv_prepare_t *h)
{
    pool_t *pool = h->data;
    uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(pool->loop), cpu, wait;
    loop_sched(pool, &cpu, &wait);
    if (pool->lag_last_ns) {
        uint64_t wall = now - pool->lag_last_ns, slept = idle - pool->lag_last_idle_ns;
        uint64_t busy = wall > slept ? wall - slept : 0;
        uint64_t used = cpu > pool->lag_last_cpu_ns ? cpu - pool->lag_last_cpu_ns : 0;
        uint64_t waited = wait > pool->lag_last_wait_ns ? wait - pool->lag_last_wait_ns : 0;
        lag_count(busy, &pool->lag_max_ns, &pool->lag_over_5ms);
        metrics_hist_observe(&pool->loop_hist, (double)busy / 1e9);
        lag_count(used, &pool->lag_cpu_max_ns, &pool->lag_cpu_over_5ms);
        if (pool->lag_sched_fd >= 0)
            lag_count(busy > used + waited ? busy - used - waited : 0, &pool->lag_blocked_max_ns,
                      &pool->lag_blocked_over_5ms);
    }
    pool->lag_last_ns = now;
    pool->lag_last_idle_ns = idle;
    pool->lag_last_cpu_ns = cpu;
    pool->lag_last_wait_ns = wait;
}

/* A peer sent bytes that are not the block asked for: an event of the status page (the fetcher
 * logged it and lowered its score). */
static void bad_block(const char *peer, const hash_t *h, int reason, void *arg)
{
    char hex[HASH_HEX_LEN + 1];
    hash_to_hex(h, hex);
    pool__event(arg, LOG_LEVEL_WARN, "peer %s sent a bad block %.16s... (%s)", peer, hex,
               reason == -EMSGSIZE ? "too long" : reason == -EPROTO ? "too short" : "SHA-256 mismatch");
}

/* The fetcher stored a block: /v1/have bitfields that list it are updated. */
static void block_stored(const hash_t *h, void *arg)
{
    pool_t *pool = arg;
    if (pool->serve)
        serve_block_stored(pool->serve, h);
}

static void free_all(pool_t *pool)
{
    for (size_t i = 0; i < pool->n_pool_peers; i++)
        free(pool->pool_peers[i]);
    free(pool->pool_peers);
    free(pool->refused);
    free(pool->pool_fail_since);
    pool->stopping = true; /* the checkpoints' files stay: the next start takes them back (ckpt.c) */
    pool__ckpt_free_all(pool);
    pool__vol_outbox_free(pool); /* (a pool freed without a stop: after pool_new) */
    pool__live_stop(pool);
    pool__jobs_free(pool);
    coord_free(pool->coord);
    budget_free(pool->host_api);
    budget_free(pool->host_bulk);
    budget_free(pool->key_signed);
    budget_free(pool->host_status);
    budget_free(pool->all_status);
    pool__peer_keys_free(pool);
    auth_guard_free(pool->guard);
    key_free(pool->key);
    if (pool->db)
        db_close(pool->db);
    if (pool->store)
        store_close(pool->store);
    free(pool->slot_busy);
    free(pool->data_dir);
    free(pool->self_exe);
    free(pool->jobs_dir);
    free((char *)pool->opts.http_url);
    free((char *)pool->opts.tracker_url);
    free((char *)pool->opts.pool);
    free((char *)pool->opts.mountpoint);
    free((char *)pool->opts.trust_file);
    free(pool->trusted);
    free(pool->events);
    free(pool->web_csp);
    free(pool);
}

/*
 * A block of a job's inputs or results asked for by another peer (serve.c): its status counts it.
 * Not every owner is a job: ckpt.c registers checkpoints with their ckpt_t, so owner is only
 * counted if it is one of our jobs (a walk of the job list per block; never a cast of a stranger).
 */
static void on_block_served(void *owner, uint64_t bytes, void *arg)
{
    pool_t *pool = arg;
    for (job_t *j = pool->joblist; j; j = j->next) {
        if (j == owner) {
            j->bytes_served += bytes;
            return;
        }
    }
}

int pool_new(uv_loop_t *loop, const pool_opts_t *opts, const pool_view_t *view, pool_t **out)
{
    pool_t *pool = xcalloc(1, sizeof(*pool));
    pool->lag_sched_fd = -1;
    pool->started_ms = pool_now_ms();
    /* seconds: a task handed out and its result in results/ (a second to hours); a loop iteration
     * (the goal is under 5 ms) */
    static const double disp[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400};
    static const double lag[] = {0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
    metrics_hist_init(&pool->dispatch_hist, disp, sizeof(disp) / sizeof(disp[0]));
    metrics_hist_init(&pool->loop_hist, lag, sizeof(lag) / sizeof(lag[0]));
    int rc = 0;
    pool->loop = loop;
    uv_loop_configure(loop, UV_METRICS_IDLE_TIME); /* for the loop-lag figure (on_loop_iteration) */
    pool->opts = *opts;
    if (view)
        pool->view = *view;
    pool->up = (pool_up_t){.res_recorded = pool__res_recorded, .res_free = pool__res_free,
                           .vol_kick = pool__vol_kick, .vol_offer = pool__vol_offer,
                           .vol_task_done = pool__vol_task_done, .vol_cancel_lease = pool__vol_cancel_lease,
                           .vol_release = pool__vol_release, .ckpt_given_back = pool__ckpt_given_back,
                           .ckpt_take = pool__ckpt_take, .ckpt_put = pool__ckpt_put, .ckpt_drop = pool__ckpt_drop,
                           .vol_result_taken = pool__vol_result_taken, .vol_new_peer = pool__vol_new_peer,
                           .vol_peer_dropped = pool__vol_peer_dropped, .vol_why_peers = pool__vol_why_peers};
    pool->data_dir = xstrdup(opts->data_dir);
    pool->self_exe = xstrdup(opts->self_exe);
    pool->jobs_dir = xstrdup(opts->jobs_dir);
    pool->opts.data_dir = pool->data_dir;
    pool->opts.self_exe = pool->self_exe;
    pool->opts.jobs_dir = pool->jobs_dir;
    pool->opts.http_url = opts->http_url ? xstrdup(opts->http_url) : NULL;
    pool->opts.tracker_url = opts->tracker_url ? xstrdup(opts->tracker_url) : NULL;
    pool->opts.pool = opts->pool ? xstrdup(opts->pool) : NULL;
    pool->opts.mountpoint = opts->mountpoint ? xstrdup(opts->mountpoint) : NULL;
    pool->opts.trust_file = opts->trust_file ? xstrdup(opts->trust_file) : NULL;
    pool->opts.peers = NULL; /* copied into pool_peers below */
    pool->opts.n_peers = 0;
    clock_gettime(CLOCK_REALTIME, &pool->t0);
    pool->slot_busy = xcalloc(opts->slots ? opts->slots : 1, sizeof(bool));

    static const char *const subdirs[] = {"",      "/staging", "/inputs",  "/results",
                                          "/work", "/store",   "/trusted", "/endorsements", "/ckpt"};
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]) && !rc; i++) {
        char *p = xasprintf("%s%s", pool->data_dir, subdirs[i]);
        rc = files_mkdir_p(p, 0755);
        if (rc)
            log_error("%s: %s", p, strerror(-rc));
        free(p);
    }
    char *work = xasprintf("%s/work", pool->data_dir);
    files_rm_rf(work); /* tasks cut off by a crash run again from scratch */
    mkdir(work, 0755);
    free(work);
    /* the copies of volunteers' live output (live.c): a view of running tasks, none survives a restart;
     * apart from work/, whose space is the tasks' own, and read by this peer only */
    char *live = xasprintf("%s/live", pool->data_dir);
    files_rm_rf(live);
    if (mkdir(live, 0700) != 0)
        log_warn("%s: %s (no live output of tasks on volunteers is kept)", live, strerror(errno));
    free(live);
    /* Sandbox users must reach the task dirs under data/work (but not list data/). */
    chmod(pool->data_dir, 0711);
    if (rc)
        goto error;
    /* The peer's identity: made on first start, 0600 (core/key.h). */
    char *p = xasprintf("%s/key", pool->data_dir);
    char why[512];
    bool created = false;
    rc = key_load_or_create(p, &pool->key, &created, why, sizeof(why));
    free(p);
    if (rc) {
        log_error("this peer's key: %s", why);
        goto error;
    }
    key_pub_t pub;
    key_public(pool->key, &pub);
    key_pub_to_hex(&pub, pool->key_hex);
    if (created)
        log_info("made this peer's key: %s", pool->key_hex);
    pool__trust_load(pool); /* whose jobs run here (trust.c) */
    p = xasprintf("%s/store", pool->data_dir);
    rc = store_open(p, &pool->store);
    free(p);
    if (rc) {
        log_error("block store: %s", strerror(-rc));
        goto error;
    }
    pool->cache_quota = opts->cache_bytes;
    if (!pool->cache_quota) { /* 10% of the data directory's filesystem, at least POOL_CACHE_MIN */
        struct statvfs sv;
        uint64_t size = statvfs(pool->data_dir, &sv) == 0 ? (uint64_t)sv.f_blocks * sv.f_frsize : 0;
        pool->cache_quota = size / 10 > POOL_CACHE_MIN ? size / 10 : POOL_CACHE_MIN;
    }
    serve_new(loop, pool->store, &pool->serve); /* fails only for NULL arguments */
    serve_set_tally(pool->serve, on_block_served, pool);
    p = xasprintf("%s/preon.db", pool->data_dir);
    rc = db_open(p, &pool->db);
    free(p);
    if (rc) {
        log_error("database: %s", strerror(-rc));
        goto error;
    }
    /* The local slots are one worker of the pool (POOL_SELF); volunteers are the others. */
    uint64_t seed = 0;
    if (getentropy(&seed, sizeof(seed)) != 0)
        seed = (uint64_t)pool->t0.tv_nsec ^ ((uint64_t)pool->t0.tv_sec << 20); /* only adaptive draws use it */
    uint32_t hb = opts->host_budget ? opts->host_budget : POOL_HOST_BUDGET;
    uint32_t kb = opts->key_budget ? opts->key_budget : POOL_KEY_BUDGET;
    pool->host_api = budget_new(hb, 2 * hb, POOL_BUDGET_ENTRIES);
    pool->host_bulk = budget_new(POOL_BULK_FACTOR * hb, 2 * POOL_BULK_FACTOR * hb, POOL_BUDGET_ENTRIES);
    pool->key_signed = budget_new(kb, 2 * kb, POOL_BUDGET_ENTRIES);
    pool->host_status = budget_new(POOL_STATUS_BUDGET, 2 * POOL_STATUS_BUDGET, POOL_BUDGET_ENTRIES);
    pool->all_status = budget_new(POOL_STATUS_ALL_BUDGET, POOL_STATUS_ALL_BUDGET, 1);
    pool->coord = coord_new(&(coord_opts_t){.max_attempts = POOL_MAX_ATTEMPTS,
                                            .max_leases_per_worker = POOL_MAX_LEASES_PER_WORKER,
                                            .max_workers_per_host = POOL_MAX_WORKERS_PER_HOST,
                                            .seed = seed});
    coord_worker_seen(pool->coord, POOL_SELF, "local", 0);
    coord_worker_cap(pool->coord, POOL_SELF, pool->opts.slots ? pool->opts.slots : 1); /* --slots may pass 64 */
    /* keep: more than a reader's read-ahead window (fs/read.c), so read-ahead is answered in memory */
    fetch_opts_t fo = {.keep_blocks = POOL_KEEP_BLOCKS, .on_stored = block_stored, .stored_arg = pool,
                       .on_bad_peer = bad_block, .bad_peer_arg = pool};
    rc = fetch_new(loop, pool->store, &fo, &pool->fetch);
    if (rc) {
        log_error("fetcher: %s", strerror(-rc));
        goto error;
    }
    for (size_t i = 0; i < opts->n_peers; i++)
        pool__add_peer(pool, opts->peers[i]);
    pool->n_static_peers = pool->n_pool_peers;
    pool__peers_load(pool); /* the pool as it was: a restarted peer greets it at once (discover.c) */
    /* preon-limit next to us starts each task without loading our libraries; else `preon limit`. */
    const char *slash = strrchr(pool->self_exe, '/');
    char *lim = xasprintf("%.*s/preon-limit", (int)(slash ? slash - pool->self_exe : 1), slash ? pool->self_exe : "/");
    if (access(lim, X_OK) != 0) {
        free(lim);
        lim = xstrdup(pool->self_exe);
    }
    /* Every run's directory lives on a btrfs of the peer's, with a quota each (exec/quota.c), in a
     * sparse image as large as what the tasks here may ask for together (--disk, or the free space). */
    char *work_dir = xasprintf("%s/work", pool->data_dir);
    uint64_t work_size = opts->disk_total;
    struct statvfs wsv;
    if (!work_size && statvfs(pool->data_dir, &wsv) == 0)
        work_size = (uint64_t)wsv.f_bavail * wsv.f_frsize;
    exec_opts_t eo = {.bwrap = opts->bwrap ? opts->bwrap : "/usr/bin/bwrap", .limiter = lim,
                      .work_dir = work_dir, .work_size = work_size, .no_disk_quota = opts->no_disk_quota,
                      .uid_base = opts->uid_base, .gid_base = opts->uid_base,
                      .slots = opts->slots ? opts->slots : 1, /* --slots 0: a peer that runs nothing */
                      .allow_network = opts->allow_network, .memory_total = opts->memory_total,
                      .cpu_permille = opts->cpu_permille, .suspend = opts->when_idle};
    pool->idle_v = opts->when_idle ? IDLE_SUSPEND : IDLE_RUN; /* until the monitor has looked */
    rc = exec_new(loop, &eo, &pool->exec);
    free(lim); /* exec_new keeps a copy */
    free(work_dir);
    if (rc) {
        log_error("executor: %s", strerror(-rc));
        goto error;
    }
    rc = pool__jobs_restore(pool);
    if (rc)
        goto error;
    pool__ckpt_load(pool); /* the checkpoints of our tasks given back before a restart */
    pool__vol_outbox_load(pool); /* results kept for other peers' submitters before a restart */
    *out = pool;
    return 0;

error:
    pool->stopping = true;
    for (job_t *j = pool->joblist; j; j = j->next) /* restored before the error: the view lets go */
        if (!j->gone && pool->view.job_removed)
            pool->view.job_removed(pool->view.arg, j);
    pool->view = (pool_view_t){0};
    if (pool->exec)
        exec_close(pool->exec, NULL, NULL);
    if (pool->fetch)
        fetch_close(pool->fetch, NULL, NULL);
    if (pool->serve)
        serve_close(pool->serve, NULL, NULL);
    free_all(pool);
    return rc ? rc : -EIO;
}

void pool_free(pool_t *pool)
{
    if (!pool)
        return;
    pool->stopping = true;
    pool->view = (pool_view_t){0};
    exec_close(pool->exec, NULL, NULL);
    fetch_close(pool->fetch, NULL, NULL);
    serve_close(pool->serve, NULL, NULL);
    free_all(pool);
}

#define API_PREFIX "/v1"

/* The peer API (docs/protocol.md): every /v1 request goes to the file that answers it. */
static void api_handler(httpd_req_t *r, void *arg)
{
    pool_t *pool = arg;
    const char *method = httpd_req_method(r);
    const char *path = httpd_req_path(r) + strlen(API_PREFIX);
    /* GET, and a POST of a running task's live output (its bytes are the body: pool/live.c) */
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
        (strcmp(method, "POST") != 0 || strncmp(path, "/output/", 8) != 0))
        return pool__api_error(r, 405, "only GET is served (and POST /v1/output)");
    char host[POOL_MAX_HOST];
    bool bulk = !strncmp(path, "/block/", 7) || !strncmp(path, "/have/", 6);
    if (pool__over_budget(pool, r, bulk ? pool->host_bulk : pool->host_api, pool__req_host(r, host, sizeof(host)),
                          "host"))
        return;
    if (pool__api_handle(pool, r, path) || pool__vol_handle(pool, r, path) || pool__res_handle(pool, r, path) ||
        pool__web_handle(pool, r, path))
        return;
    pool__api_error(r, 404, "unknown request (see docs/protocol.md)");
}

static void on_idle(void *arg, idle_verdict_t v, const char *why) { pool__idle_changed(arg, v, why); }

void pool_start(pool_t *pool)
{
    pool->started = true;
    int wrc = db_writer_start(pool->db, pool->loop); /* from now on, records are committed off the loop */
    if (wrc)
        log_warn("database writer thread: %s: records are committed on the loop", strerror(wrc < 0 ? -wrc : wrc));
    pool->lag_sched_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC); /* this is the loop thread */
    pool->lag = xcalloc(1, sizeof(*pool->lag));
    uv_prepare_init(pool->loop, pool->lag);
    pool->lag->data = pool;
    uv_prepare_start(pool->lag, on_loop_iteration);
    if (pool->opts.httpd) {
        int rc = httpd_route(pool->opts.httpd, API_PREFIX, api_handler, pool);
        if (rc)
            log_error("peer API: %s", strerror(-rc));
        rc = pool__web_start(pool);
        if (rc)
            log_error("status page: %s", strerror(-rc));
    }
    if (pool->opts.when_idle) {
        idle_opts_t io = pool->opts.idle;
        char *cpu_file = exec_tasks_cpu_file(pool->exec);
        io.cpu_file = cpu_file;
        int rc = idle_new(pool->loop, &io, on_idle, pool, &pool->idle);
        free(cpu_file);
        if (rc)
            log_error("--when idle: %s: no task runs here", strerror(-rc));
        else
            pool->idle_v = idle_verdict(pool->idle, NULL);
    }
    pool__vol_start(pool);
    pool__cache_start(pool);
    pool__discover_start(pool);
    pool__trust_start(pool);
    pool__jobs_kick(pool);
}

static void finish_stop(pool_t *pool);

static void writer_stopped(void *arg) { finish_stop(arg); }

static void drain_check(uv_timer_t *t)
{
    pool_t *pool = t->data;
    uv_close((uv_handle_t *)t, pool__handle_free);
    finish_stop(pool);
}

/* Runs once tasks are reaped; waits (without blocking) for thread-pool work to land. */
static void finish_stop(pool_t *pool)
{
    if (pool->pending_work > 0) {
        uv_timer_t *t = xcalloc(1, sizeof(*t));
        uv_timer_init(pool->loop, t);
        t->data = pool;
        uv_timer_start(t, drain_check, 10, 0);
        return;
    }
    if (db_writer_running(pool->db)) { /* the last records are committed, then the thread ends */
        db_writer_stop(pool->db, writer_stopped, pool);
        return;
    }
    void (*cb)(void *) = pool->stopped;
    void *arg = pool->stopped_arg;
    free_all(pool);
    if (cb)
        cb(arg);
}

static void serve_closed(void *arg)
{
    pool_t *pool = arg;
    pool->serve = NULL;
    finish_stop(pool);
}

static void fetch_closed(void *arg)
{
    pool_t *pool = arg;
    pool->fetch = NULL;
    serve_close(pool->serve, serve_closed, pool); /* waits for its thread-pool items (they read the store) */
}

static void exec_closed(void *arg)
{
    pool_t *pool = arg;
    pool->exec = NULL;
    fetch_close(pool->fetch, fetch_closed, pool); /* pending reads and discoveries end with -ECANCELED */
}

void pool_stop(pool_t *pool, void (*done)(void *arg), void *arg)
{
    pool->stopping = true;
    pool__drain_end(pool); /* a drain cut short: its done is not called */
    pool->stopped = done;
    pool->stopped_arg = arg;
    pool->view = (pool_view_t){0}; /* the view is going away: nothing more is reported */
    if (pool->opts.httpd && pool->started) {
        httpd_unroute(pool->opts.httpd, API_PREFIX);
        pool__web_stop(pool);
    }
    pool__discover_stop(pool);
    pool__vol_stop(pool);
    pool__live_stop(pool);
    pool__cache_stop(pool);
    pool__trust_stop(pool);
    idle_close(pool->idle);
    pool->idle = NULL;
    if (pool->lag) {
        uv_prepare_stop(pool->lag);
        uv_close((uv_handle_t *)pool->lag, pool__handle_free);
        pool->lag = NULL;
        if (pool->lag_sched_fd >= 0)
            close(pool->lag_sched_fd);
        pool->lag_sched_fd = -1;
    }
    exec_close(pool->exec, exec_closed, pool);
}

void pool_jobs_foreach(pool_t *pool, void (*cb)(void *arg, pool_job_t *j), void *arg)
{
    for (job_t *j = pool->joblist; j; j = j->next)
        if (!j->gone)
            cb(arg, j);
}

int pool_block_read(pool_t *pool, pool_job_t *j, const hash_t *h, uint32_t len, pool_block_cb cb, void *arg)
{
    return fetch_block_data(pool->fetch, h, len, (const char *const *)j->peers, j->n_peers, cb, arg);
}

int pool_block_prefetch(pool_t *pool, pool_job_t *j, const hash_t *h, uint32_t len)
{
    return fetch_prefetch(pool->fetch, h, len, (const char *const *)j->peers, j->n_peers);
}

const uint8_t *pool_block_peek(pool_t *pool, const hash_t *h, size_t *len) { return fetch_peek(pool->fetch, h, len); }

void pool_block_hold(const uint8_t *data) { fetch_data_hold(data); }

void pool_block_release(const uint8_t *data) { fetch_data_release(data); }

bool pool_block_has(pool_t *pool, const hash_t *h) { return store_has(pool->store, h); }

void pool_job_read_failed(pool_t *pool, pool_job_t *j)
{
    (void)pool;
    j->read_failures++;
}

ssize_t pool_block_load(pool_t *pool, const hash_t *h, void *buf, size_t len, uint64_t off)
{
    return store_read(pool->store, h, buf, len, off);
}
