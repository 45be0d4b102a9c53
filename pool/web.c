/*
 * web.c: the peer watched from a browser or by Prometheus (docs/usage.md, "Watching a peer"):
 *  - GET /          the status page: one static asset (pool/status.html, embedded at build time)
 *                   that polls /v1/status every second and shows it; no other load, no CDN;
 *  - GET /v1/status the same as JSON (pool/status.h says what, docs/protocol.md how);
 *  - GET /metrics   the Prometheus text format.
 * Read-only GETs, unsigned (a browser must load them), charged to the caller's per-host request
 * budget like every read of the peer API (pool/gate.c). /v1/status and /metrics cost much more than
 * other reads, so they are also charged to budgets of their own (POOL_STATUS_BUDGET per host,
 * POOL_STATUS_ALL_BUDGET for every host together): what anyone who reaches the port can make the
 * loop spend on them is bounded, however many hosts ask.
 *
 * Everything shown is gathered here from the counters and records where they are kept (the
 * coordination core, the jobs, the fetcher, the server, the store, events.c); status.c turns the
 * snapshot into JSON or text. Gathering is bounded so a large pool costs the loop little: at most
 * STATUS_MAX_JOBS jobs (the newest), STATUS_MAX_TASKS tasks per job and STATUS_MAX_ALL_TASKS in
 * all (a job's running tasks from the core's leased list, its failed ones from its failure lines,
 * then the lowest indices: O(tasks shown), not O(tasks)), STATUS_MAX_PEERS peers; the JSON says
 * what was left out.
 *
 * Job names come from users and from other peers: the page puts every value in the document with
 * textContent (never as markup), and its Content-Security-Policy allows no script or style but
 * its own (by hash, computed at start from the asset's bytes), no connection but to this peer,
 * no frame, no form, no base URL.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "pool/internal.h"
#include "pool/status.h"

/* pool/status.html, as one C string (the Makefile makes this file from it with sed). */
static const char status_html[] =
#include "status_html.inc"
    ;

#define WEB_METRICS_PATH "/metrics"

/* ---- the snapshot ---- */

typedef struct worker_where {
    const char *worker, *url;
} worker_where_t;

typedef struct gather {
    status_snap_t s;
    status_job_t *jobs;
    status_task_t *tasks; /* every job's, in one array of STATUS_MAX_ALL_TASKS */
    size_t n_tasks;
    uint32_t walk;            /* indices of other peers' jobs that may still be looked at (STATUS_MAX_WALK) */
    worker_where_t where[64]; /* where the workers of the listed tasks are reached */
    size_t n_where;
    status_peer_t *peers;
    status_event_t *events;
    char host[256];
} gather_t;

/* "N reason" (jobs.c's fail_line) for task t, or NULL: the reason shown for a failed task. */
static const char *fail_reason(const job_t *j, uint32_t t)
{
    for (size_t i = 0; i < j->n_fail_lines; i++) {
        char *end;
        unsigned long n = strtoul(j->fail_lines[i], &end, 10);
        if (end != j->fail_lines[i] && *end == ' ' && n == t)
            return end + 1;
    }
    return NULL;
}

/* A remote job's task is listed if its result is here. */
static bool has_result(uint32_t t, void *arg)
{
    const job_t *j = arg;
    return j->tres && j->tres[t];
}

/* Which tasks of j to list (at most cap, ascending): running and failed ones, then the lowest
 * indices (another peer's job: its tasks running here, then those whose result is here). */
static size_t pick_tasks(pool_t *pool, const job_t *j, uint32_t *walk, uint32_t *out, size_t cap)
{
    uint32_t first[STATUS_MAX_TASKS + POOL_MAX_FAIL_LINES];
    size_t n = 0;
    if (!j->remote) {
        n = coord_job_leased(pool->coord, j->id, first, STATUS_MAX_TASKS);
        n = n < STATUS_MAX_TASKS ? n : STATUS_MAX_TASKS;
        for (size_t i = 0; i < j->n_fail_lines && i < POOL_MAX_FAIL_LINES; i++) {
            char *end;
            unsigned long t = strtoul(j->fail_lines[i], &end, 10);
            if (end != j->fail_lines[i] && t < UINT32_MAX)
                first[n++] = (uint32_t)t;
        }
        return status_pick_tasks(first, n, j->man.desc.tasks, NULL, NULL, UINT32_MAX, NULL, out, cap);
    }
    for (running_t *r = pool->running; r && n < STATUS_MAX_TASKS; r = r->next)
        if (r->job == j)
            first[n++] = r->task;
    /* a job whose results here are few and far in costs a walk to them: the walks of an answer
     * share STATUS_MAX_WALK (100 jobs of 100000 tasks with one result here at the end took 19 ms) */
    return status_pick_tasks(first, n, j->man.desc.tasks, has_result, (void *)j, j->n_tres, walk, out, cap);
}

/* Where the worker whose key (hex) is worker is reached, or NULL. Looked up once per worker and
 * request, for the first 64 workers met (the tasks of a pool share few; past them no address is
 * shown, so a request costs at most 64 look-ups). Borrowed from the pool's bound keys (trust.c):
 * valid while the handler runs. */
static const char *worker_url(pool_t *pool, gather_t *g, const char *worker)
{
    for (size_t i = 0; i < g->n_where; i++)
        if (!strcmp(g->where[i].worker, worker))
            return g->where[i].url;
    if (g->n_where == sizeof(g->where) / sizeof(g->where[0]))
        return NULL;
    key_pub_t k;
    const char *url = key_pub_from_hex(worker, strlen(worker), &k) == 0 ? pool__bound_url(pool, &k) : NULL;
    g->where[g->n_where++] = (worker_where_t){.worker = worker, .url = url};
    return url;
}

/* The task entries of j (listed from g->tasks[g->n_tasks...]). */
static void gather_tasks(pool_t *pool, gather_t *g, const job_t *j, status_job_t *sj, uint64_t now)
{
    size_t room = STATUS_MAX_ALL_TASKS - g->n_tasks;
    size_t cap = room < STATUS_MAX_TASKS ? room : STATUS_MAX_TASKS;
    uint32_t ntasks = j->man.desc.tasks;
    sj->tasks = &g->tasks[g->n_tasks];
    sj->tasks_truncated = ntasks > cap;
    if (!j->published || cap == 0 || ntasks == 0)
        return;
    uint32_t idx[STATUS_MAX_TASKS];
    size_t n = pick_tasks(pool, j, &g->walk, idx, cap);
    coord_task_info_t info[STATUS_MAX_TASKS];
    if (!j->remote && coord_tasks_info(pool->coord, j->id, idx, n, info) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        uint32_t t = idx[i];
        status_task_t *st = &g->tasks[g->n_tasks + i];
        *st = (status_task_t){.index = t, .ms = -1};
        const taskres_t *tr = j->tres ? j->tres[t] : NULL;
        running_t *here = NULL;
        for (running_t *r = pool->running; r && !here; r = r->next) /* at most --slots of them */
            if (r->job == j && r->task == t)
                here = r;
        if (!j->remote) {
            st->state = info[i].state;
            st->attempts = info[i].attempts;
            if (info[i].holder) {
                bool self = !strcmp(info[i].holder, POOL_SELF);
                st->worker = self ? pool->key_hex : info[i].holder;
                st->here = self;
            }
        } else {
            st->state = here ? TASK_RUNNING : tr && tr->ok ? TASK_SUCCEEDED : TASK_FAILED;
            st->here = here != NULL;
            if (here)
                st->worker = pool->key_hex;
        }
        if (st->state == TASK_RUNNING) {
            if (!j->remote && j->dispatch_t0 && j->dispatch_t0[t] && now >= j->dispatch_t0[t])
                st->ms = (int64_t)(now - j->dispatch_t0[t]);
            else if (here && now >= here->started_ms)
                st->ms = (int64_t)(now - here->started_ms);
        } else if (st->state == TASK_SUCCEEDED || st->state == TASK_FAILED) {
            if (j->elapsed_ms && j->elapsed_ms[t] != UINT32_MAX)
                st->ms = j->elapsed_ms[t];
            if (tr) {
                st->has_exit = true;
                st->exit_code = tr->exit_code;
                if (tr->worker[0]) {
                    st->worker = tr->worker;
                    st->here = !strcmp(tr->worker, pool->key_hex);
                }
            }
            if (st->state == TASK_FAILED)
                st->reason = fail_reason(j, t);
        }
        if (st->worker && !st->here)
            st->worker_url = worker_url(pool, g, st->worker);
    }
    sj->n_tasks = n;
    sj->tasks_truncated = ntasks > n;
    g->n_tasks += n;
}

/* Jobs by state (every live job) and the tasks of ours by state: O(jobs), coord_counts is O(1). */
static void count_jobs(pool_t *pool, status_snap_t *s)
{
    size_t live = 0;
    for (job_t *j = pool->joblist; j; j = j->next) {
        if (j->gone || j->creating)
            continue;
        live++;
        if (j->state <= POOL_JOB_CANCELLED)
            s->jobs_by_state[j->state]++;
        coord_counts_t c;
        if (j->published && !j->remote && coord_counts(pool->coord, j->id, &c) == 0) {
            s->tasks_by_state[TASK_WAITING] += c.waiting;
            s->tasks_by_state[TASK_RUNNING] += c.running;
            s->tasks_by_state[TASK_SUCCEEDED] += c.succeeded;
            s->tasks_by_state[TASK_FAILED] += c.failed;
            s->tasks_by_state[TASK_CANCELLED] += c.cancelled;
        }
    }
    s->jobs_total = live;
}

static void gather_jobs(pool_t *pool, gather_t *g, uint64_t now)
{
    size_t live = g->s.jobs_total;
    size_t skip = live > STATUS_MAX_JOBS ? live - STATUS_MAX_JOBS : 0, seen = 0, n = 0;
    job_t *shown[STATUS_MAX_JOBS];
    for (job_t *j = pool->joblist; j && n < STATUS_MAX_JOBS; j = j->next) {
        if (j->gone || j->creating || seen++ < skip) /* the list is oldest first: the newest are shown */
            continue;
        status_job_t *sj = &g->jobs[n++];
        *sj = (status_job_t){.name = j->name, .id = j->published ? j->id : NULL,
                             .state = pool_job_state_name(j->state), .reason = j->reason,
                             .submitter = j->published ? j->man.submitter : NULL, .remote = j->remote,
                             .from = j->remote && j->n_peers ? j->peers[0] : NULL, .listed = j->listed,
                             .results = j->n_tres};
        if (j->published) {
            if (j->remote)
                sj->counts = j->rcounts;
            else
                coord_counts(pool->coord, j->id, &sj->counts);
        }
        sj->tasks = g->tasks;
        sj->tasks_truncated = j->man.desc.tasks > 0;
        shown[n - 1] = j;
    }
    for (size_t i = n; i-- > 0;) /* the newest jobs get their tasks listed first (STATUS_MAX_ALL_TASKS) */
        gather_tasks(pool, g, shown[i], &g->jobs[i], now);
    g->s.n_jobs = n;
}

static int cmp_peer(const void *a, const void *b)
{
    const status_peer_t *x = a, *y = b;
    if (x->rate_in != y->rate_in)
        return x->rate_in < y->rate_in ? 1 : -1;
    return x->bytes_in < y->bytes_in ? 1 : x->bytes_in > y->bytes_in ? -1 : 0;
}

static void gather_peers(pool_t *pool, gather_t *g)
{
    size_t n = pool->n_pool_peers;
    status_peer_t *all = xcalloc(n ? n : 1, sizeof(*all));
    for (size_t i = 0; i < n; i++) {
        status_peer_t *p = &all[i];
        p->url = pool->pool_peers[i];
        p->pool = true;
        fetch_peer_stats_t st;
        if (pool->fetch && fetch_peer_stats(pool->fetch, p->url, &st) == 0) {
            p->rate_in = st.rate;
            p->bytes_in = st.bytes;
            p->blocks_in = st.blocks;
            p->failures = st.failures;
            p->bad = st.bad;
            p->score = st.score;
            p->inflight = st.inflight;
            p->banned = st.banned;
        }
    }
    qsort(all, n, sizeof(*all), cmp_peer);
    g->s.peers_total = n;
    g->s.n_peers = n < STATUS_MAX_PEERS ? n : STATUS_MAX_PEERS;
    g->peers = all;
    g->s.peers = all;
}

static void gather(pool_t *pool, gather_t *g)
{
    memset(g, 0, sizeof(*g));
    status_snap_t *s = &g->s;
    uint64_t now = pool_now_ms();
    gethostname(g->host, sizeof(g->host) - 1);
    s->now_ms = now;
    s->started_ms = pool->started_ms;
    s->host = g->host;
    s->key = pool->key_hex;
    s->http_url = pool->opts.http_url;
    s->pool_name = pool->opts.pool ? pool->opts.pool : "default";
    s->slots = pool->opts.slots;
    s->running_here = pool->nrunning;
    s->when_idle = pool->opts.when_idle;
    s->idle = pool->idle_v == IDLE_RUN;
    if (pool->opts.when_idle && pool->idle_v != IDLE_RUN) {
        s->idle_why = "its idle monitor did not start (see the log)";
        if (pool->idle)
            idle_verdict(pool->idle, &s->idle_why);
    }
    s->pool_peers = pool->n_pool_peers;
    for (int i = 0; i < STATUS_JOB_STATES; i++)
        s->job_state_names[i] = pool_job_state_name((pool_job_state_t)i);
    s->tasks_ok = pool->tasks_ok;
    s->tasks_failed = pool->tasks_failed;
    s->runs_ok = pool->runs_ok;
    s->runs_failed = pool->runs_failed;
    uint32_t all = coord_leases(pool->coord), self = coord_worker_leases(pool->coord, POOL_SELF);
    s->leases_given = all > self ? all - self : 0;
    for (running_t *r = pool->running; r; r = r->next)
        s->leases_held += r->remote;
    s->leases_held += pool->ckpt_pending;
    if (pool->fetch) {
        fetch_stats_t fst;
        fetch_stats(pool->fetch, &fst);
        s->bytes_in = fst.bytes;
        s->blocks_in = fst.blocks;
        s->bad_blocks = fst.bad;
        s->transfers_too_slow = fst.too_slow;

        s->blocks_again = fst.again;
        s->blocks_not_stored = fst.store_errors;
        s->rate_in = fst.rate;
        s->fetches_inflight = fst.inflight;
        s->fetch_latency = fetch_latency(pool->fetch);
    }
    serve_stats_t sst;
    serve_stats(pool->serve, &sst);
    s->bytes_out = sst.bytes;
    s->blocks_out = sst.blocks;
    s->rate_out = sst.rate;
    store_stats_t cst;
    store_stats(pool->store, &cst);
    s->store_blocks = store_blocks(pool->store);
    s->cache_bytes = cst.bytes;
    s->cache_quota = pool->cache_quota;
    s->cache_hits = cst.hits;
    s->cache_evictions = cst.evictions;
    s->cache_evicted_bytes = cst.evicted_bytes;
    s->requests_over_budget = pool__refused(pool);
    if (pool->opts.httpd) {
        httpd_stats_t hs;
        httpd_stats(pool->opts.httpd, &hs);
        s->conns_refused_per_host = hs.refused_per_host;
        s->conns_timed_out = hs.timed_out;
        s->requests_too_large = hs.too_large;
    }

    s->disk_errors = pool->disk_errors;
    s->loop_busy_max_ns = pool->lag_max_ns;
    s->loop_stalls = pool->lag_over_5ms;
    s->dispatch_latency = &pool->dispatch_hist;
    s->loop_busy = &pool->loop_hist;
    count_jobs(pool, s);
}

/* The lists too (the page's JSON; /metrics needs only the counters). */
static void gather_lists(pool_t *pool, gather_t *g)
{
    g->jobs = xcalloc(STATUS_MAX_JOBS, sizeof(*g->jobs));
    g->tasks = xcalloc(STATUS_MAX_ALL_TASKS, sizeof(*g->tasks));
    g->walk = STATUS_MAX_WALK;
    g->s.jobs = g->jobs;
    gather_jobs(pool, g, g->s.now_ms);
    gather_peers(pool, g);
    static const char *const level[] = {"error", "warn", "info", "debug"};
    const pool_event_t *ev[POOL_MAX_EVENTS];
    size_t n = pool__events(pool, ev, POOL_MAX_EVENTS);
    g->events = xcalloc(n ? n : 1, sizeof(*g->events));
    for (size_t i = 0; i < n; i++)
        g->events[i] = (status_event_t){.ms = ev[i]->ms, .text = ev[i]->text,
                                        .level = ev[i]->level >= 0 && ev[i]->level <= 3 ? level[ev[i]->level] : "info"};
    g->s.events = g->events;
    g->s.n_events = n;
}

static void gather_free(gather_t *g)
{
    free(g->jobs);
    free(g->tasks);
    free(g->peers);
    free(g->events);
}

/* ---- the routes ---- */

/* The status's and the metrics' own budgets (on top of the host's): true if r was answered 429. */
static bool status_over_budget(pool_t *pool, httpd_req_t *r)
{
    char host[POOL_MAX_HOST];
    return pool__over_budget(pool, r, pool->host_status, pool__req_host(r, host, sizeof(host)), "host") ||
           pool__over_budget(pool, r, pool->all_status, "together", "every host");
}

/* GET or HEAD, within the caller's request budget: true if r may be answered (else it was). */
static bool admit(pool_t *pool, httpd_req_t *r)
{
    const char *m = httpd_req_method(r);
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        httpd_reply_header(r, "Allow", "GET, HEAD");
        pool__api_error(r, 405, "only GET is served");
        return false;
    }
    char host[POOL_MAX_HOST];
    return !pool__over_budget(pool, r, pool->host_api, pool__req_host(r, host, sizeof(host)), "host");
}

bool pool__web_handle(pool_t *pool, httpd_req_t *r, const char *path)
{
    if (strcmp(path, "/status") != 0)
        return false;
    if (status_over_budget(pool, r))
        return true;
    gather_t g;
    gather(pool, &g);
    gather_lists(pool, &g);
    char *body = NULL;
    size_t len = 0;
    int rc = status_json(&g.s, &body, &len);
    gather_free(&g);
    if (rc)
        return pool__api_error(r, 500, "cannot encode the status"), true;
    httpd_reply_header(r, "Cache-Control", "no-store");
    httpd_reply_header(r, "X-Content-Type-Options", "nosniff");
    httpd_reply_take(r, 200, "application/json", body, len);
    return true;
}

static void on_metrics(httpd_req_t *r, void *arg)
{
    pool_t *pool = arg;
    if (!admit(pool, r))
        return;
    if (strcmp(httpd_req_path(r), WEB_METRICS_PATH) != 0)
        return pool__api_error(r, 404, "not found");
    if (status_over_budget(pool, r))
        return;
    gather_t g;
    gather(pool, &g); /* the counters; /metrics lists no job, task, peer or event */
    size_t len = 0;
    char *body = status_metrics(&g.s, &len);
    httpd_reply_header(r, "Cache-Control", "no-store");
    httpd_reply_take(r, 200, "text/plain; version=0.0.4; charset=utf-8", body, len);
}

static void on_page(httpd_req_t *r, void *arg)
{
    pool_t *pool = arg;
    if (!admit(pool, r))
        return;
    const char *path = httpd_req_path(r);
    size_t qlen = 0;
    httpd_req_query(r, &qlen);
    if (strcmp(path, "/") != 0 && strcmp(path, "/index.html") != 0) /* "/" catches every path no route takes */
        return pool__api_error(r, 404, "not found (the status page is /, its data /v1/status)");
    /* The page takes no query. One with a query is most likely a BitTorrent announce sent to a
     * peer's base URL (--tracker without /announce): a 404 lets the client say what to try. */
    if (qlen)
        return pool__api_error(r, 404, "not found (the status page takes no query; a tracker's announce URL ends "
                                       "in /announce)");
    httpd_reply_header(r, "Content-Security-Policy", pool->web_csp);
    httpd_reply_header(r, "X-Content-Type-Options", "nosniff");
    httpd_reply_header(r, "Referrer-Policy", "no-referrer");
    httpd_reply_header(r, "Cache-Control", "no-cache");
    httpd_reply(r, 200, "text/html; charset=utf-8", status_html, sizeof(status_html) - 1);
}

/* 'sha256-...' of the text between the first `open` tag and `close` in the page, into out. */
static int inline_hash(const char *open, const char *close, char *out, size_t cap)
{
    const char *a = strstr(status_html, open), *b = a ? strstr(a + strlen(open), close) : NULL;
    if (!a || !b)
        return -ENOENT;
    a += strlen(open);
    hash_t h;
    hash_sha256(a, (size_t)(b - a), &h);
    char b64[HASH_B64_LEN + 1];
    hash_to_base64(&h, b64);
    snprintf(out, cap, "'sha256-%s'", b64);
    return 0;
}

int pool__web_start(pool_t *pool)
{
    char script[HASH_B64_LEN + 16], style[HASH_B64_LEN + 16];
    if (inline_hash("<script>", "</script>", script, sizeof(script)) ||
        inline_hash("<style>", "</style>", style, sizeof(style)))
        return -ENOENT; /* the asset lost its script or style: a build error */
    /* nothing but this page's own script and style; data only from this peer */
    pool->web_csp = xasprintf("default-src 'none'; script-src %s; style-src %s; connect-src 'self'; img-src 'self' "
                              "data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                              script, style);
    int rc = httpd_route(pool->opts.httpd, "/", on_page, pool);
    if (!rc)
        rc = httpd_route(pool->opts.httpd, WEB_METRICS_PATH, on_metrics, pool);
    return rc;
}

void pool__web_stop(pool_t *pool)
{
    httpd_unroute(pool->opts.httpd, "/");
    httpd_unroute(pool->opts.httpd, WEB_METRICS_PATH);
}
