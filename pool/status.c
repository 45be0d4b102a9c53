/*
 * status.c: the status JSON and the metrics text from a snapshot (pool/status.h). Pure.
 *
 * JSON through jansson. jansson refuses a string that is not UTF-8 (json_string returns NULL), and
 * a job name is whatever bytes a directory name or a peer's manifest held: such a string goes in
 * with U+FFFD for each byte that is not part of a valid sequence, so one odd name never empties
 * the page. Escaping for HTML is the page's (it sets textContent, never markup).
 *
 * Metric names follow Prometheus's conventions (checked by `promtool check metrics` in
 * tests/integration/test_web.sh): base units in the name (_seconds, _bytes), _total on counters
 * only, one HELP and TYPE per family.
 */
#include "pool/status.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

/* Length of the valid UTF-8 sequence at s (1..4), or 0 (RFC 3629: no overlongs, no surrogates). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

/* A JSON string of s (NULL: null), with U+FFFD for bytes that are not UTF-8. */
static json_t *jstr(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t len = strlen(s);
    char *v = xmalloc(3 * len + 1), *o = v;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_seq(p);
        if (n) {
            memcpy(o, p, n);
            o += n;
            p += n;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            p++;
        }
    }
    *o = '\0';
    j = json_string(v);
    free(v);
    return j ? j : json_string("?");
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

size_t status_pick_tasks(uint32_t *first, size_t nfirst, uint32_t ntasks, bool (*fill)(uint32_t t, void *arg),
                         void *arg, uint32_t fill_max, uint32_t *walk, uint32_t *out, size_t cap)
{
    if (nfirst)
        qsort(first, nfirst, sizeof(*first), cmp_u32);
    size_t n = 0;
    for (size_t i = 0; i < nfirst && n < cap && first[i] < ntasks; i++)
        if (!n || out[n - 1] != first[i])
            out[n++] = first[i];
    size_t chosen = n, k = 0;
    uint32_t seen = 0;
    for (uint32_t t = 0; t < ntasks && n < cap && seen < fill_max; t++) {
        if (fill && walk && *walk == 0)
            break;
        if (fill && walk)
            (*walk)--;
        if (fill && !fill(t, arg))
            continue;
        seen++;
        while (k < chosen && out[k] < t)
            k++;
        if (k < chosen && out[k] == t)
            continue;
        out[n++] = t;
    }
    qsort(out, n, sizeof(*out), cmp_u32);
    return n;
}

static void set(json_t *o, const char *key, json_t *v) { json_object_set_new(o, key, v); }
static void set_u(json_t *o, const char *key, uint64_t v) { set(o, key, json_integer((json_int_t)v)); }

static json_t *counts_json(const coord_counts_t *c)
{
    json_t *o = json_object();
    set_u(o, "total", c->total);
    set_u(o, "waiting", c->waiting);
    set_u(o, "running", c->running);
    set_u(o, "succeeded", c->succeeded);
    set_u(o, "failed", c->failed);
    set_u(o, "cancelled", c->cancelled);
    return o;
}

static json_t *task_json(const status_task_t *t)
{
    json_t *o = json_object();
    set_u(o, "task", t->index);
    set(o, "state", json_string(coord_state_name(t->state)));
    set_u(o, "attempts", t->attempts);
    set(o, "worker", jstr(t->worker));
    if (t->worker_url)
        set(o, "worker_url", jstr(t->worker_url));
    set(o, "here", json_boolean(t->here));
    set(o, "ms", t->ms >= 0 ? json_integer((json_int_t)t->ms) : json_null());
    if (t->has_exit)
        set(o, "exit", json_integer(t->exit_code));
    if (t->reason)
        set(o, "reason", jstr(t->reason));
    return o;
}

static json_t *job_json(const status_job_t *j)
{
    json_t *o = json_object();
    set(o, "name", jstr(j->name));
    set(o, "id", jstr(j->id));
    set(o, "state", jstr(j->state));
    set(o, "reason", jstr(j->reason));
    set(o, "origin", json_string(j->remote ? "remote" : "here"));
    set(o, "submitter", jstr(j->submitter));
    if (j->from)
        set(o, "from", jstr(j->from));
    set(o, "listed", json_boolean(j->listed));
    set(o, "counts", counts_json(&j->counts));
    uint32_t over = j->counts.succeeded + j->counts.failed + j->counts.cancelled;
    set(o, "progress", json_real(j->counts.total ? (double)over / j->counts.total : 0));
    set_u(o, "results", j->results);
    json_t *a = json_array();
    for (size_t i = 0; i < j->n_tasks; i++)
        json_array_append_new(a, task_json(&j->tasks[i]));
    set(o, "tasks", a);
    set(o, "tasks_truncated", json_boolean(j->tasks_truncated));
    return o;
}

static json_t *peer_json(const status_peer_t *p)
{
    json_t *o = json_object();
    set(o, "url", jstr(p->url));
    set(o, "pool", json_boolean(p->pool));
    set(o, "rate_in", json_real(p->rate_in));
    set_u(o, "bytes_in", p->bytes_in);
    set_u(o, "blocks_in", p->blocks_in);
    set_u(o, "failures", p->failures);
    set_u(o, "bad_blocks", p->bad);
    set(o, "score", json_integer(p->score));
    set(o, "banned", json_boolean(p->banned));
    set_u(o, "in_flight", p->inflight);
    return o;
}

int status_json(const status_snap_t *s, char **out, size_t *len)
{
    json_t *root = json_object();
    set_u(root, "version", 1);
    set_u(root, "now_ms", s->now_ms);

    json_t *peer = json_object();
    set(peer, "host", jstr(s->host));
    set(peer, "key", jstr(s->key));
    set(peer, "http", jstr(s->http_url));
    set(peer, "pool", jstr(s->pool_name));
    set_u(peer, "started_ms", s->started_ms);
    set_u(peer, "slots", s->slots);
    set_u(peer, "running", s->running_here);
    set(peer, "when_idle", json_boolean(s->when_idle));
    if (s->when_idle) {
        set(peer, "idle", json_boolean(s->idle));
        set(peer, "idle_why", jstr(s->idle_why));
    }
    set(root, "peer", peer);

    json_t *pool = json_object();
    set_u(pool, "peers", s->pool_peers);
    json_t *jobs = json_object();
    for (size_t i = 0; i < STATUS_JOB_STATES; i++)
        if (s->job_state_names[i])
            set_u(jobs, s->job_state_names[i], s->jobs_by_state[i]);
    set(pool, "jobs", jobs);
    json_t *tasks = json_object();
    for (int st = TASK_WAITING; st <= TASK_CANCELLED; st++)
        set_u(tasks, coord_state_name((task_state_t)st), s->tasks_by_state[st]);
    set(pool, "tasks", tasks);
    set_u(pool, "tasks_succeeded_since_start", s->tasks_ok);
    set_u(pool, "tasks_failed_since_start", s->tasks_failed);
    set_u(pool, "leases_given", s->leases_given);
    set_u(pool, "leases_held", s->leases_held);
    set(root, "pool", pool);

    json_t *tr = json_object();
    set_u(tr, "bytes_in", s->bytes_in);
    set_u(tr, "blocks_in", s->blocks_in);
    set_u(tr, "bytes_out", s->bytes_out);
    set_u(tr, "blocks_out", s->blocks_out);
    set_u(tr, "bad_blocks", s->bad_blocks);
    set(tr, "rate_in", json_real(s->rate_in));
    set(tr, "rate_out", json_real(s->rate_out));
    set_u(tr, "fetches_in_flight", s->fetches_inflight);
    set(root, "transfer", tr);

    json_t *cache = json_object();
    set_u(cache, "blocks", s->store_blocks);
    set_u(cache, "bytes", s->cache_bytes);
    set_u(cache, "quota", s->cache_quota);
    set_u(cache, "hits", s->cache_hits);
    set_u(cache, "evictions", s->cache_evictions);
    set_u(cache, "evicted_bytes", s->cache_evicted_bytes);
    set(root, "cache", cache);

    /* slow and flooding peers cut off, each by its named limit (docs/reliability.md) */
    json_t *cut = json_object();
    set_u(cut, "requests_over_budget", s->requests_over_budget);
    set_u(cut, "connections_refused_per_host", s->conns_refused_per_host);
    set_u(cut, "connections_timed_out", s->conns_timed_out);
    set_u(cut, "requests_too_large", s->requests_too_large);
    set_u(cut, "transfers_too_slow", s->transfers_too_slow);
    set(root, "cut_off", cut);

    json_t *loop = json_object();
    set(loop, "busy_max_ms", json_real((double)s->loop_busy_max_ns / 1e6));
    set_u(loop, "stalls_over_5ms", s->loop_stalls);
    set(root, "loop", loop);

    json_t *a = json_array();
    for (size_t i = 0; i < s->n_jobs; i++)
        json_array_append_new(a, job_json(&s->jobs[i]));
    set(root, "jobs", a);
    set_u(root, "jobs_total", s->jobs_total);
    set(root, "jobs_truncated", json_boolean(s->jobs_total > s->n_jobs));

    a = json_array();
    for (size_t i = 0; i < s->n_peers; i++)
        json_array_append_new(a, peer_json(&s->peers[i]));
    set(root, "peers", a);
    set_u(root, "peers_total", s->peers_total);
    set(root, "peers_truncated", json_boolean(s->peers_total > s->n_peers));

    a = json_array();
    for (size_t i = 0; i < s->n_events; i++) {
        json_t *e = json_object();
        set_u(e, "ms", s->events[i].ms);
        set(e, "level", jstr(s->events[i].level));
        set(e, "text", jstr(s->events[i].text));
        json_array_append_new(a, e);
    }
    set(root, "events", a);

    json_t *lim = json_object();
    set_u(lim, "jobs", STATUS_MAX_JOBS);
    set_u(lim, "tasks_per_job", STATUS_MAX_TASKS);
    set_u(lim, "tasks", STATUS_MAX_ALL_TASKS);
    set_u(lim, "peers", STATUS_MAX_PEERS);
    set(root, "limits", lim);

    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text)
        return -EIO;
    *len = strlen(text);
    *out = text; /* jansson allocates with malloc (no json_set_alloc_funcs here) */
    return 0;
}

/* ---- /metrics ---- */

static void counter(metrics_text_t *t, const char *name, const char *help, uint64_t v)
{
    metrics_family(t, name, "counter", help);
    metrics_sample_u64(t, name, NULL, NULL, v);
}

static void gauge(metrics_text_t *t, const char *name, const char *help, double v)
{
    metrics_family(t, name, "gauge", help);
    metrics_sample(t, name, NULL, NULL, v);
}

static void hist(metrics_text_t *t, const char *name, const char *help, const metrics_hist_t *h)
{
    if (!h)
        return;
    metrics_family(t, name, "histogram", help);
    metrics_hist_text(t, name, h);
}

char *status_metrics(const status_snap_t *s, size_t *len)
{
    metrics_text_t t = {0};
    gauge(&t, "preon_start_time_seconds", "When this peer started (Unix time).", (double)s->started_ms / 1000);
    gauge(&t, "preon_slots", "Tasks this peer runs at once (--slots).", s->slots);
    gauge(&t, "preon_running_tasks", "Tasks running on this peer's slots now.", s->running_here);
    gauge(&t, "preon_pool_peers", "Pool peers known now.", (double)s->pool_peers);

    metrics_family(&t, "preon_jobs", "gauge", "Jobs known here (this peer's and other peers'), by state.");
    for (size_t i = 0; i < STATUS_JOB_STATES; i++)
        if (s->job_state_names[i])
            metrics_sample_u64(&t, "preon_jobs", "state", s->job_state_names[i], s->jobs_by_state[i]);
    metrics_family(&t, "preon_tasks", "gauge", "Tasks of this peer's own jobs, by state.");
    for (int st = TASK_WAITING; st <= TASK_CANCELLED; st++)
        metrics_sample_u64(&t, "preon_tasks", "state", coord_state_name((task_state_t)st), s->tasks_by_state[st]);
    metrics_family(&t, "preon_tasks_decided_total", "counter",
                   "Tasks of this peer's own jobs decided since it started (on any worker), by result.");
    metrics_sample_u64(&t, "preon_tasks_decided_total", "result", "succeeded", s->tasks_ok);
    metrics_sample_u64(&t, "preon_tasks_decided_total", "result", "failed", s->tasks_failed);
    metrics_family(&t, "preon_task_runs_total", "counter",
                   "Task runs that ended on this peer's slots since it started (its jobs' and others'), by result.");
    metrics_sample_u64(&t, "preon_task_runs_total", "result", "succeeded", s->runs_ok);
    metrics_sample_u64(&t, "preon_task_runs_total", "result", "failed", s->runs_failed);
    gauge(&t, "preon_leases_given", "Leases on this peer's tasks held by volunteers now.", s->leases_given);
    gauge(&t, "preon_leases_held", "Leases on other peers' tasks held by this peer now.", s->leases_held);

    counter(&t, "preon_received_bytes_total", "Block bytes received from other peers (verified or not).",
            s->bytes_in);
    counter(&t, "preon_received_blocks_total", "Blocks received from other peers and verified.", s->blocks_in);
    counter(&t, "preon_sent_bytes_total", "Block bytes served to other peers.", s->bytes_out);
    counter(&t, "preon_sent_blocks_total", "Blocks served to other peers.", s->blocks_out);
    counter(&t, "preon_bad_blocks_total", "Transfers whose bytes were not the block asked for.", s->bad_blocks);
    counter(&t, "preon_received_blocks_again_total",
            "Verified blocks received that the block store held already: fetched twice.", s->blocks_again);
    counter(&t, "preon_blocks_not_stored_total", "Verified blocks the block store could not take (a full disk).",
            s->blocks_not_stored);
    counter(&t, "preon_disk_errors_total",
            "Writes to the data directory that failed (results, records): a full disk, say.", s->disk_errors);
    gauge(&t, "preon_fetches_in_flight", "Block transfers under way now.", s->fetches_inflight);
    hist(&t, "preon_block_fetch_duration_seconds",
         "Time from a block's request to its verified bytes (slot wait, transfers, hash).", s->fetch_latency);
    hist(&t, "preon_task_dispatch_duration_seconds",
         "Time from handing a task out (here or to a volunteer) to its result in results/.", s->dispatch_latency);

    gauge(&t, "preon_store_blocks", "Blocks in the block store.", (double)s->store_blocks);
    gauge(&t, "preon_cache_bytes", "Bytes of the block store that --cache bounds.", (double)s->cache_bytes);
    gauge(&t, "preon_cache_quota_bytes", "The block store's quota (--cache).", (double)s->cache_quota);
    counter(&t, "preon_cache_hits_total", "Blocks read from the block store.", s->cache_hits);
    counter(&t, "preon_cache_evictions_total", "Blocks evicted from the block store to stay within --cache.",
            s->cache_evictions);
    counter(&t, "preon_cache_evicted_bytes_total", "Bytes evicted from the block store.", s->cache_evicted_bytes);

    counter(&t, "preon_requests_over_budget_total", "Peer API requests refused with 429 (over a request budget).",
            s->requests_over_budget);
    counter(&t, "preon_connections_refused_per_host_total",
            "Connections closed at once: their host had --host-conns open.", s->conns_refused_per_host);
    counter(&t, "preon_connections_timed_out_total",
            "Connections cut: a request did not arrive whole within --request-timeout.", s->conns_timed_out);
    counter(&t, "preon_requests_too_large_total", "Requests answered 413, 414 or 431 (over a size limit).",
            s->requests_too_large);
    counter(&t, "preon_transfers_too_slow_total",
            "Block transfers cut off under the low-speed limit or past the fetch time-out.", s->transfers_too_slow);
    hist(&t, "preon_loop_busy_seconds", "The event loop's busy time per iteration (the lag of everything it serves).",
         s->loop_busy);
    gauge(&t, "preon_loop_busy_max_seconds", "The longest busy loop iteration since start.",
          (double)s->loop_busy_max_ns / 1e9);
    counter(&t, "preon_loop_stalls_total", "Loop iterations busy for more than 5 ms.", s->loop_stalls);
    return metrics_text_take(&t, len);
}
