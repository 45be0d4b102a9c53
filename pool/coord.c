/*
 * coord.c: the coordination core (pool/coord.h): tasks, leases by worker, replicas, quorum,
 * membership. Pure: time comes in as now_ms, nothing reads a clock or touches a file.
 *
 * Jobs sit in a list in the order they were added (first added, first served); each owns an array
 * of tasks. What keeps the hot calls cheap for a job of COORD_MAX_TASKS tasks:
 *  - per-job counts of each state, updated on every transition (coord_counts is O(1));
 *  - a min-heap of the task indices that may want a hand-out (a replica nobody holds yet), so a
 *    lease takes the lowest such index in O(log n) even when lost tasks come back below tasks
 *    already handed out. Entries are deleted lazily (dropped when they reach the top and no longer
 *    want anything); a task is pushed only if not already in, so the heap holds at most ntasks;
 *  - an intrusive doubly-linked list of the tasks that have leases out, so expiry, the next
 *    deadline and dropping a worker cost O(leased tasks), bounded by the workers' slots.
 * A task's leases and reports are small arrays allocated on first use (one entry per replica).
 * Workers live in one array, found by a linear scan (a pool has few enough peers per submitter);
 * a lease refers to its worker by index, so a worker is freed only after its leases have ended.
 * Callbacks run after the state is final; a job removed from inside one is parked in a graveyard
 * until the outermost callback loop ends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "pool/coord.h"

#define NONE UINT32_MAX

typedef struct lease {
    uint32_t worker; /* index into c->workers */
    uint64_t end;
} lease_t;

typedef struct report {
    char *worker;
    char *result;
    bool ok;
} report_t;

typedef struct task {
    lease_t *leases;   /* nleases of them, room for wanted */
    report_t *reports; /* nreports */
    uint32_t attempts; /* hand-outs, minus releases */
    uint32_t losses;
    uint32_t prev, next; /* leased list links */
    int32_t decided;     /* index of the report that decided it, or -1 */
    uint8_t state, wanted, nleases, nreports, cap_leases, cap_reports;
    bool in_heap, leased;
    bool single; /* adaptive: run once, on a worker with a long streak of valid results (quorum 1) */
    char *lapsed; /* the worker whose lease on it last ran out (coord_expire): it alone may adopt it */
} task_t;

typedef struct job {
    char *id;
    uint32_t ntasks, replicas, quorum, max_replicas;
    bool adaptive;
    task_t *tasks;
    uint32_t *heap;
    uint32_t nheap;
    uint32_t lease_head; /* first task with leases out, or NONE */
    uint32_t count[TASK_CANCELLED + 1];
    bool removed;
    struct job *next;
} job_t;

typedef struct worker {
    char *id, *host; /* id NULL: a free slot */
    uint64_t last_seen;
    uint32_t nleases;
    uint32_t cap; /* its own lease cap, 0: the default */
} worker_t;

/* A worker's record of results judged by a quorum: kept after it leaves the pool. */
typedef struct record {
    char *id;
    coord_record_t r;
    uint64_t judged; /* c->judge_seq when last judged: the one judged longest ago goes first */
} record_t;

struct coord {
    coord_opts_t o;
    uint64_t rng; /* xorshift64* state: adaptive replication's draws (seeded by coord_opts.seed) */
    record_t *records;
    uint32_t nrecords, cap_records;
    uint64_t judge_seq;
    job_t *head, *tail;
    worker_t *workers;
    uint32_t nworkers, cap_workers, live_workers;
    int depth;        /* inside callbacks */
    job_t *graveyard; /* jobs removed inside callbacks */
};

typedef void (*lease_cb)(void *arg, const char *job_id, uint32_t task, const char *worker);

/* One ended lease for a callback: copies, so the callback may change anything. */
typedef struct ended {
    job_t *job;
    uint32_t task;
    char *worker;
} ended_t;

typedef struct endlist {
    ended_t *v;
    size_t n, cap;
} endlist_t;

static bool valid_id(const char *s)
{
    return s && *s && strnlen(s, COORD_MAX_ID + 1) <= COORD_MAX_ID;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static bool terminal(const task_t *k)
{
    return k->state == TASK_SUCCEEDED || k->state == TASK_FAILED || k->state == TASK_CANCELLED;
}

static uint32_t need(const task_t *k)
{
    if (terminal(k))
        return 0;
    uint32_t have = (uint32_t)k->nleases + k->nreports;
    return k->wanted > have ? k->wanted - have : 0;
}

static void task_release(task_t *k)
{
    for (uint8_t i = 0; i < k->nreports; i++) {
        free(k->reports[i].worker);
        free(k->reports[i].result);
    }
    free(k->reports);
    free(k->leases);
    free(k->lapsed);
}

static void job_free(job_t *j)
{
    for (uint32_t t = 0; t < j->ntasks; t++)
        task_release(&j->tasks[t]);
    free(j->id);
    free(j->tasks);
    free(j->heap);
    free(j);
}

coord_t *coord_new(const coord_opts_t *opts)
{
    coord_t *c = xcalloc(1, sizeof(*c));
    if (opts)
        c->o = *opts;
    if (!c->o.max_attempts)
        c->o.max_attempts = 3;
    if (!c->o.max_leases_per_worker)
        c->o.max_leases_per_worker = 64;
    if (!c->o.max_workers_per_host)
        c->o.max_workers_per_host = 64;
    if (!c->o.max_workers)
        c->o.max_workers = 4096;
    c->rng = c->o.seed ? c->o.seed : 0x9e3779b97f4a7c15ull;
    return c;
}

static void free_graveyard(coord_t *c)
{
    for (job_t *j = c->graveyard, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    c->graveyard = NULL;
}

void coord_free(coord_t *c)
{
    if (!c)
        return;
    for (job_t *j = c->head, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    free_graveyard(c);
    for (uint32_t i = 0; i < c->nworkers; i++) {
        free(c->workers[i].id);
        free(c->workers[i].host);
    }
    free(c->workers);
    for (uint32_t i = 0; i < c->nrecords; i++)
        free(c->records[i].id);
    free(c->records);
    free(c);
}

static job_t *find(const coord_t *c, const char *job_id)
{
    if (!job_id)
        return NULL;
    for (job_t *j = c->head; j; j = j->next)
        if (strcmp(j->id, job_id) == 0)
            return j;
    return NULL;
}

static uint32_t find_worker(const coord_t *c, const char *id)
{
    if (!id)
        return NONE;
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (c->workers[i].id && strcmp(c->workers[i].id, id) == 0)
            return i;
    return NONE;
}

/* ---- the heap of task indices, smallest on top ---- */

static void heap_push(job_t *j, uint32_t t)
{
    if (j->tasks[t].in_heap)
        return;
    j->tasks[t].in_heap = true;
    uint32_t i = j->nheap++;
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (j->heap[parent] <= t)
            break;
        j->heap[i] = j->heap[parent];
        i = parent;
    }
    j->heap[i] = t;
}

static uint32_t heap_pop(job_t *j)
{
    uint32_t top = j->heap[0];
    uint32_t last = j->heap[--j->nheap];
    uint32_t i = 0, n = j->nheap;
    for (;;) {
        uint32_t ch = 2 * i + 1;
        if (ch >= n)
            break;
        if (ch + 1 < n && j->heap[ch + 1] < j->heap[ch])
            ch++;
        if (last <= j->heap[ch])
            break;
        j->heap[i] = j->heap[ch];
        i = ch;
    }
    if (n > 0)
        j->heap[i] = last;
    j->tasks[top].in_heap = false;
    return top;
}

/* ---- the leased list ---- */

static void leased_link(job_t *j, uint32_t t)
{
    task_t *k = &j->tasks[t];
    if (k->leased)
        return;
    k->leased = true;
    k->prev = NONE;
    k->next = j->lease_head;
    if (j->lease_head != NONE)
        j->tasks[j->lease_head].prev = t;
    j->lease_head = t;
}

static void leased_unlink(job_t *j, uint32_t t)
{
    task_t *k = &j->tasks[t];
    if (!k->leased)
        return;
    k->leased = false;
    if (k->prev != NONE)
        j->tasks[k->prev].next = k->next;
    else
        j->lease_head = k->next;
    if (k->next != NONE)
        j->tasks[k->next].prev = k->prev;
    k->prev = k->next = NONE;
}

/* The one place a task's state changes: keeps the counts, the heap and the leased list true.
 * final = SUCCEEDED, FAILED or CANCELLED; otherwise the state follows from the leases out. */
static void settle(job_t *j, uint32_t t, int final)
{
    task_t *k = &j->tasks[t];
    task_state_t st;
    if (final >= 0)
        st = (task_state_t)final;
    else if (terminal(k))
        st = (task_state_t)k->state;
    else
        st = k->nleases ? TASK_RUNNING : TASK_WAITING;
    if (st != k->state) {
        j->count[k->state]--;
        j->count[st]++;
        k->state = (uint8_t)st;
    }
    if (k->nleases)
        leased_link(j, t);
    else
        leased_unlink(j, t);
    if (need(k) > 0)
        heap_push(j, t);
}

/* Removes lease i of task k (keeps the worker's count). */
static void drop_lease(coord_t *c, task_t *k, uint8_t i)
{
    worker_t *w = &c->workers[k->leases[i].worker];
    if (w->nleases)
        w->nleases--;
    k->leases[i] = k->leases[--k->nleases];
}

static int lease_of(const task_t *k, uint32_t wi)
{
    for (uint8_t i = 0; i < k->nleases; i++)
        if (k->leases[i].worker == wi)
            return i;
    return -1;
}

static void endlist_add(endlist_t *l, job_t *j, uint32_t t, const char *worker)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
    }
    l->v[l->n++] = (ended_t){j, t, xstrdup(worker)};
}

/* Runs the callbacks of l (skipping removed jobs) and frees it. */
static void endlist_fire(coord_t *c, endlist_t *l, lease_cb cb, void *arg)
{
    c->depth++;
    for (size_t i = 0; i < l->n; i++)
        if (cb && !l->v[i].job->removed)
            cb(arg, l->v[i].job->id, l->v[i].task, l->v[i].worker);
    c->depth--;
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].worker);
    free(l->v);
    if (c->depth == 0)
        free_graveyard(c);
}

/* Ends every lease of a decided or cancelled task (their holders will get LATE). */
static void end_all_leases(coord_t *c, job_t *j, uint32_t t, endlist_t *l)
{
    task_t *k = &j->tasks[t];
    while (k->nleases) {
        if (l)
            endlist_add(l, j, t, c->workers[k->leases[k->nleases - 1].worker].id);
        drop_lease(c, k, (uint8_t)(k->nleases - 1));
    }
}

/* A lease was lost (the worker's, not the task's fault). */
static void lose(coord_t *c, job_t *j, uint32_t t, uint8_t li)
{
    task_t *k = &j->tasks[t];
    drop_lease(c, k, li);
    k->losses++;
    if (k->losses >= c->o.max_attempts) {
        end_all_leases(c, j, t, NULL);
        settle(j, t, TASK_FAILED);
    } else {
        settle(j, t, -1);
    }
}

/* ---- jobs ---- */

int coord_add_job(coord_t *c, const char *job_id, uint32_t ntasks, uint32_t replicas)
{
    if (!valid_id(job_id) || ntasks == 0 || ntasks > COORD_MAX_TASKS || replicas == 0 ||
        replicas > COORD_MAX_REPLICAS)
        return -EINVAL;
    if (find(c, job_id))
        return -EEXIST;
    job_t *j = xcalloc(1, sizeof(*j));
    j->id = xstrdup(job_id);
    j->ntasks = ntasks;
    j->replicas = replicas;
    j->quorum = replicas / 2 + 1;
    j->max_replicas = 2 * replicas;
    j->tasks = xcalloc(ntasks, sizeof(*j->tasks));
    j->heap = xcalloc(ntasks, sizeof(*j->heap));
    for (uint32_t i = 0; i < ntasks; i++) { /* 0..n-1 in order is already a valid min-heap */
        task_t *k = &j->tasks[i];
        k->state = TASK_WAITING;
        k->wanted = (uint8_t)replicas;
        k->decided = -1;
        k->in_heap = true;
        k->prev = k->next = NONE;
        j->heap[i] = i;
    }
    j->nheap = ntasks;
    j->lease_head = NONE;
    j->count[TASK_WAITING] = ntasks;
    if (c->tail)
        c->tail->next = j;
    else
        c->head = j;
    c->tail = j;
    return 0;
}

int coord_set_adaptive(coord_t *c, const char *job_id, bool adaptive)
{
    job_t *j = find(c, job_id);
    if (!j)
        return -ENOENT;
    if (adaptive && j->replicas < 2)
        return -EINVAL;
    j->adaptive = adaptive;
    return 0;
}

int coord_set_quorum(coord_t *c, const char *job_id, uint32_t quorum, uint32_t max_replicas)
{
    job_t *j = find(c, job_id);
    if (!j)
        return -ENOENT;
    if (quorum == 0)
        quorum = j->replicas / 2 + 1;
    if (max_replicas == 0)
        max_replicas = 2 * j->replicas;
    if (quorum > j->replicas || max_replicas < j->replicas || max_replicas > COORD_MAX_RUNS)
        return -EINVAL;
    j->quorum = quorum;
    j->max_replicas = max_replicas;
    return 0;
}

unsigned coord_room_for(const coord_room_t *r, uint64_t memory, uint64_t disk)
{
    if (r->slots_used >= r->slots)
        return 0;
    uint64_t n = r->slots - r->slots_used;
    if (r->memory_total) {
        uint64_t left = r->memory_used < r->memory_total ? r->memory_total - r->memory_used : 0;
        uint64_t k = memory ? left / memory : n;
        n = k < n ? k : n;
    }
    if (r->disk_total) {
        uint64_t left = r->disk_used < r->disk_total ? r->disk_total - r->disk_used : 0;
        uint64_t k = disk ? left / disk : n;
        n = k < n ? k : n;
    }
    return (unsigned)n;
}

int coord_remove_job(coord_t *c, const char *job_id)
{
    job_t *prev = NULL, *j;
    if (!job_id)
        return -ENOENT;
    for (j = c->head; j; prev = j, j = j->next)
        if (strcmp(j->id, job_id) == 0)
            break;
    if (!j)
        return -ENOENT;
    for (uint32_t t = j->lease_head; t != NONE; t = j->tasks[t].next)
        while (j->tasks[t].nleases)
            drop_lease(c, &j->tasks[t], 0);
    if (prev)
        prev->next = j->next;
    else
        c->head = j->next;
    if (c->tail == j)
        c->tail = prev;
    if (c->depth > 0) {
        j->removed = true;
        j->next = c->graveyard;
        c->graveyard = j;
    } else {
        job_free(j);
    }
    return 0;
}

bool coord_has_job(const coord_t *c, const char *job_id)
{
    return find(c, job_id) != NULL;
}

int coord_cancel_job(coord_t *c, const char *job_id, lease_cb cb, void *arg)
{
    job_t *j = find(c, job_id);
    if (!j)
        return -ENOENT;
    endlist_t l = {0};
    for (uint32_t t = 0; t < j->ntasks; t++) {
        if (terminal(&j->tasks[t]))
            continue;
        end_all_leases(c, j, t, &l);
        settle(j, t, TASK_CANCELLED);
    }
    endlist_fire(c, &l, cb, arg);
    return 0;
}

int coord_restore(coord_t *c, const char *job_id, uint32_t task, task_state_t state, uint32_t attempts)
{
    job_t *j = find(c, job_id);
    if (!j || task >= j->ntasks)
        return -ENOENT;
    if ((unsigned)state > TASK_CANCELLED)
        return -EINVAL;
    task_t *k = &j->tasks[task];
    end_all_leases(c, j, task, NULL);
    k->attempts = attempts;
    k->losses = attempts; /* each earlier hand-out ended without a result reaching us */
    if (state == TASK_WAITING || state == TASK_RUNNING) {
        if (k->losses >= c->o.max_attempts)
            k->losses = c->o.max_attempts - 1; /* it may run once more: the restart was not its fault */
        if (terminal(k)) { /* back from a terminal state: let settle recompute it */
            j->count[k->state]--;
            j->count[TASK_WAITING]++;
            k->state = TASK_WAITING;
        }
        settle(j, task, -1);
    } else {
        settle(j, task, (int)state);
    }
    return 0;
}

/* ---- membership ---- */

uint32_t coord_host_workers(const coord_t *c, const char *host)
{
    uint32_t n = 0;
    for (uint32_t i = 0; host && i < c->nworkers; i++)
        if (c->workers[i].id && strcmp(c->workers[i].host, host) == 0)
            n++;
    return n;
}

int coord_worker_seen(coord_t *c, const char *worker, const char *host, uint64_t now_ms)
{
    if (!valid_id(worker) || !host || strnlen(host, COORD_MAX_ID + 1) > COORD_MAX_ID)
        return -EINVAL;
    uint32_t wi = find_worker(c, worker);
    if (wi != NONE) {
        if (now_ms > c->workers[wi].last_seen)
            c->workers[wi].last_seen = now_ms;
        return 0;
    }
    if (c->live_workers >= c->o.max_workers)
        return -ENOSPC;
    if (coord_host_workers(c, host) >= c->o.max_workers_per_host)
        return -EMFILE;
    for (wi = 0; wi < c->nworkers && c->workers[wi].id; wi++)
        ;
    if (wi == c->nworkers) {
        if (c->nworkers == c->cap_workers) {
            c->cap_workers = c->cap_workers ? c->cap_workers * 2 : 16;
            c->workers = xreallocarray(c->workers, c->cap_workers, sizeof(*c->workers));
        }
        c->nworkers++;
    }
    c->workers[wi] = (worker_t){.id = xstrdup(worker), .host = xstrdup(host), .last_seen = now_ms};
    c->live_workers++;
    return 0;
}

bool coord_worker_known(const coord_t *c, const char *worker, uint64_t *last_seen_ms)
{
    uint32_t wi = find_worker(c, worker);
    if (wi != NONE && last_seen_ms)
        *last_seen_ms = c->workers[wi].last_seen;
    return wi != NONE;
}

int coord_worker_cap(coord_t *c, const char *worker, uint32_t cap)
{
    uint32_t wi = find_worker(c, worker);
    if (wi == NONE)
        return -ENOENT;
    c->workers[wi].cap = cap;
    return 0;
}

uint32_t coord_worker_leases(const coord_t *c, const char *worker)
{
    uint32_t wi = find_worker(c, worker);
    return wi == NONE ? 0 : c->workers[wi].nleases;
}

/* Loses every lease of worker wi into l, then forgets it. */
static size_t drop_worker(coord_t *c, uint32_t wi, endlist_t *l)
{
    size_t n = 0;
    for (job_t *j = c->head; j && c->workers[wi].nleases; j = j->next) {
        for (uint32_t t = j->lease_head, next; t != NONE; t = next) {
            next = j->tasks[t].next;
            int li = lease_of(&j->tasks[t], wi);
            if (li < 0)
                continue;
            endlist_add(l, j, t, c->workers[wi].id);
            lose(c, j, t, (uint8_t)li);
            n++;
            /* lose may unlink t (next is still right) or fail the task (its other leases end:
             * they are not on wi, which holds at most one lease per task) */
        }
    }
    free(c->workers[wi].id);
    free(c->workers[wi].host);
    c->workers[wi] = (worker_t){0};
    c->live_workers--;
    return n;
}

int coord_worker_drop(coord_t *c, const char *worker, lease_cb cb, void *arg)
{
    uint32_t wi = find_worker(c, worker);
    if (wi == NONE)
        return -ENOENT;
    endlist_t l = {0};
    size_t n = drop_worker(c, wi, &l);
    endlist_fire(c, &l, cb, arg);
    return (int)n;
}

size_t coord_drop_silent(coord_t *c, uint64_t now_ms, uint64_t silent_ms, const char *keep, lease_cb cb,
                         void *arg)
{
    endlist_t l = {0};
    size_t dropped = 0;
    for (uint32_t wi = 0; wi < c->nworkers; wi++) {
        worker_t *w = &c->workers[wi];
        if (!w->id || (keep && strcmp(w->id, keep) == 0) || add_sat(w->last_seen, silent_ms) > now_ms)
            continue;
        drop_worker(c, wi, &l);
        dropped++;
    }
    endlist_fire(c, &l, cb, arg);
    return dropped;
}

/* ---- leases ---- */

static bool involved(const coord_t *c, const task_t *k, uint32_t wi)
{
    if (lease_of(k, wi) >= 0)
        return true;
    for (uint8_t i = 0; i < k->nreports; i++)
        if (strcmp(k->reports[i].worker, c->workers[wi].id) == 0)
            return true;
    return false;
}

/* A uniform draw in [0, 1) (xorshift64*). */
static double draw(coord_t *c)
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return (double)((c->rng * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
}

static const coord_record_t *record_find(const coord_t *c, const char *worker)
{
    for (uint32_t i = 0; i < c->nrecords; i++)
        if (!strcmp(c->records[i].id, worker))
            return &c->records[i].r;
    return NULL;
}

/*
 * Adaptive replication (BOINC's): a task's first hand-out decides how it runs. To a worker whose
 * streak of valid results is at least COORD_ADAPTIVE_STREAK, with probability 1 - 1/streak, and
 * unless the task is one of the COORD_ADAPTIVE_SPOT share checked anyway, it runs once and that
 * report decides it; otherwise it wants the job's replicas and quorum as any other task.
 */
static void adapt(coord_t *c, const job_t *j, task_t *k, uint32_t wi)
{
    if (!j->adaptive || k->nleases || k->nreports)
        return;
    const coord_record_t *r = record_find(c, c->workers[wi].id);
    uint32_t streak = r ? r->streak : 0;
    double p = draw(c), spot = draw(c);
    k->single = streak >= COORD_ADAPTIVE_STREAK && p < 1.0 - 1.0 / streak && spot >= COORD_ADAPTIVE_SPOT;
    k->wanted = k->single ? 1 : (uint8_t)j->replicas;
}

/* Worker wi takes a lease on task t of j (which wants a replica it is not part of). */
static void grant(coord_t *c, job_t *j, uint32_t t, uint32_t wi, uint64_t now_ms, uint64_t lease_ms)
{
    task_t *k = &j->tasks[t];
    adapt(c, j, k, wi);
    if (k->nleases == k->cap_leases) {
        k->cap_leases = k->cap_leases ? (uint8_t)(k->cap_leases * 2) : (uint8_t)j->max_replicas;
        k->leases = xreallocarray(k->leases, k->cap_leases, sizeof(*k->leases));
    }
    k->leases[k->nleases++] = (lease_t){wi, add_sat(now_ms, lease_ms)};
    k->attempts++;
    c->workers[wi].nleases++;
    settle(j, t, -1);
}

/* Hands worker wi the lowest task of j that wants a replica it is not already part of. */
static bool take(coord_t *c, job_t *j, uint32_t wi, uint64_t now_ms, uint64_t lease_ms, uint32_t *task)
{
    uint32_t *deferred = NULL, nd = 0, cap = 0;
    bool found = false;
    while (j->nheap > 0 && !found) {
        uint32_t t = heap_pop(j);
        task_t *k = &j->tasks[t];
        if (need(k) == 0)
            continue; /* a lazily deleted entry */
        if (involved(c, k, wi)) {
            /* replicas go to distinct workers: keep it for someone else */
            if (nd == cap) {
                cap = cap ? cap * 2 : 16;
                deferred = xreallocarray(deferred, cap, sizeof(*deferred));
            }
            deferred[nd++] = t;
            continue;
        }
        grant(c, j, t, wi, now_ms, lease_ms);
        *task = t;
        found = true;
    }
    for (uint32_t i = 0; i < nd; i++)
        heap_push(j, deferred[i]);
    free(deferred);
    return found;
}

int coord_lease(coord_t *c, const char *job_id, const char *worker, uint64_t now_ms, uint64_t lease_ms,
                const char **job_out, uint32_t *task)
{
    uint32_t wi = find_worker(c, worker);
    if (wi == NONE || !task)
        return -ENOENT;
    uint32_t cap = c->workers[wi].cap ? c->workers[wi].cap : c->o.max_leases_per_worker;
    if (c->workers[wi].nleases >= cap)
        return -EDQUOT;
    if (job_id) {
        job_t *j = find(c, job_id);
        if (!j)
            return -ENOENT;
        if (!take(c, j, wi, now_ms, lease_ms, task))
            return -EAGAIN;
        if (job_out)
            *job_out = j->id;
        return 0;
    }
    for (job_t *j = c->head; j; j = j->next) {
        if (take(c, j, wi, now_ms, lease_ms, task)) {
            if (job_out)
                *job_out = j->id;
            return 0;
        }
    }
    return -EAGAIN;
}

int coord_adopt(coord_t *c, const char *job_id, uint32_t task, const char *worker, bool any, uint64_t now_ms,
                uint64_t lease_ms)
{
    uint32_t wi = find_worker(c, worker);
    job_t *j = find(c, job_id);
    if (wi == NONE || !j || task >= j->ntasks)
        return -ENOENT;
    task_t *k = &j->tasks[task];
    if (involved(c, k, wi))
        return lease_of(k, wi) >= 0 ? 0 : -EAGAIN;
    /* A worker may not pick a task it was never handed: only the one whose lease ran out, or any
     * while the caller's leases from before its restart are forgotten (any). */
    if (!any && (!k->lapsed || strcmp(k->lapsed, worker) != 0))
        return -EPERM;
    /* what take would check: a replica wanted (not decided, not held by enough others), the cap */
    if (need(k) == 0)
        return -EAGAIN;
    uint32_t cap = c->workers[wi].cap ? c->workers[wi].cap : c->o.max_leases_per_worker;
    if (c->workers[wi].nleases >= cap)
        return -EDQUOT;
    grant(c, j, task, wi, now_ms, lease_ms);
    return 0;
}

/* The task, and the index of worker's lease on it. */
static int held(const coord_t *c, const char *job_id, uint32_t task, const char *worker, job_t **jo, int *li)
{
    job_t *j = find(c, job_id);
    if (!j || task >= j->ntasks)
        return -ENOENT;
    uint32_t wi = find_worker(c, worker);
    int i = wi == NONE ? -1 : lease_of(&j->tasks[task], wi);
    if (i < 0)
        return -EPERM;
    *jo = j;
    *li = i;
    return 0;
}

int coord_renew(coord_t *c, const char *job_id, uint32_t task, const char *worker, uint64_t now_ms,
                uint64_t lease_ms)
{
    job_t *j;
    int li, rc = held(c, job_id, task, worker, &j, &li);
    if (rc)
        return rc;
    j->tasks[task].leases[li].end = add_sat(now_ms, lease_ms);
    return 0;
}

int coord_holds(const coord_t *c, const char *job_id, uint32_t task, const char *worker)
{
    job_t *j;
    int li;
    return held(c, job_id, task, worker, &j, &li);
}

int coord_release(coord_t *c, const char *job_id, uint32_t task, const char *worker)
{
    job_t *j;
    int li, rc = held(c, job_id, task, worker, &j, &li);
    if (rc)
        return rc;
    task_t *k = &j->tasks[task];
    drop_lease(c, k, (uint8_t)li);
    if (k->attempts > 0)
        k->attempts--;
    settle(j, task, -1);
    return 0;
}

int coord_lost(coord_t *c, const char *job_id, uint32_t task, const char *worker)
{
    job_t *j;
    int li, rc = held(c, job_id, task, worker, &j, &li);
    if (rc)
        return rc;
    lose(c, j, task, (uint8_t)li);
    return 0;
}

static bool same_result(const report_t *a, const report_t *b)
{
    return a->ok == b->ok && (!a->ok || strcmp(a->result, b->result) == 0);
}

static record_t *record_of(coord_t *c, const char *worker)
{
    for (uint32_t i = 0; i < c->nrecords; i++)
        if (!strcmp(c->records[i].id, worker))
            return &c->records[i];
    if (c->nrecords >= COORD_MAX_RECORDS_PER_WORKER * c->o.max_workers) { /* bounded: keys are free */
        uint32_t old = 0;
        for (uint32_t i = 1; i < c->nrecords; i++)
            if (c->records[i].judged < c->records[old].judged)
                old = i;
        free(c->records[old].id);
        c->records[old] = c->records[--c->nrecords];
    }
    if (c->nrecords == c->cap_records) {
        c->cap_records = c->cap_records ? c->cap_records * 2 : 16;
        c->records = xreallocarray(c->records, c->cap_records, sizeof(*c->records));
    }
    record_t *r = &c->records[c->nrecords++];
    *r = (record_t){.id = xstrdup(worker)};
    return r;
}

/* A task is decided by the report at k->decided: every report agreeing with it was valid, every
 * other one invalid (its worker's streak of valid results starts again). A single adaptive run
 * was checked by nobody: it moves no record (else a streak would feed itself). */
static void record_votes(coord_t *c, const task_t *k)
{
    if (k->single)
        return;
    const report_t *win = &k->reports[k->decided];
    c->judge_seq++;
    for (uint8_t i = 0; i < k->nreports; i++) {
        record_t *rec = record_of(c, k->reports[i].worker);
        rec->judged = c->judge_seq;
        coord_record_t *r = &rec->r;
        if (same_result(&k->reports[i], win)) {
            r->valid++;
            r->streak++;
        } else {
            r->invalid++;
            r->streak = 0;
        }
    }
}

/* What a report would do to the task (see coord_report), without doing it. */
static coord_verdict_t judge(const coord_t *c, const job_t *j, const task_t *k, const char *worker,
                             const char *result_id, bool ok, int *lease_index)
{
    for (uint8_t i = 0; i < k->nreports; i++)
        if (strcmp(k->reports[i].worker, worker) == 0)
            return COORD_DUPLICATE;
    uint32_t wi = find_worker(c, worker);
    int li = wi == NONE ? -1 : lease_of(k, wi);
    if (lease_index)
        *lease_index = li;
    if (li < 0 || terminal(k))
        return COORD_LATE;
    report_t mine = {(char *)worker, (char *)result_id, ok};
    uint32_t agree = 1;
    for (uint8_t i = 0; i < k->nreports; i++)
        agree += same_result(&k->reports[i], &mine);
    if (agree >= (k->single ? 1 : j->quorum))
        return COORD_ACCEPTED;
    /* every wanted replica in (this one the last) and no quorum: one more run, or past the bound none */
    if (k->nleases == 1 && (uint32_t)k->nreports + 1 >= k->wanted && k->wanted >= j->max_replicas)
        return COORD_OUTVOTED;
    return COORD_PENDING;
}

int coord_report_preview(const coord_t *c, const char *job_id, uint32_t task, const char *worker,
                         const char *result_id, bool ok, coord_verdict_t *verdict)
{
    if (!verdict || !valid_id(worker) || !valid_id(result_id))
        return -EINVAL;
    const job_t *j = find(c, job_id);
    if (!j || task >= j->ntasks)
        return -ENOENT;
    *verdict = judge(c, j, &j->tasks[task], worker, result_id, ok, NULL);
    return 0;
}

int coord_report(coord_t *c, const char *job_id, uint32_t task, const char *worker, const char *result_id,
                 bool ok, coord_verdict_t *verdict)
{
    if (!verdict || !valid_id(worker) || !valid_id(result_id))
        return -EINVAL;
    job_t *j = find(c, job_id);
    if (!j || task >= j->ntasks)
        return -ENOENT;
    task_t *k = &j->tasks[task];
    int li = -1;
    coord_verdict_t v = judge(c, j, k, worker, result_id, ok, &li);
    *verdict = v;
    if (v == COORD_DUPLICATE || v == COORD_LATE)
        return 0;
    drop_lease(c, k, (uint8_t)li);
    if (k->nreports == k->cap_reports) {
        k->cap_reports = k->cap_reports ? (uint8_t)(k->cap_reports * 2) : k->wanted;
        k->reports = xreallocarray(k->reports, k->cap_reports, sizeof(*k->reports));
    }
    k->reports[k->nreports++] = (report_t){xstrdup(worker), xstrdup(result_id), ok};
    if (v == COORD_ACCEPTED) {
        k->decided = k->nreports - 1;
        end_all_leases(c, j, task, NULL);
        if (j->replicas >= 2) /* an unreplicated job's results prove nothing about their workers */
            record_votes(c, k);
        settle(j, task, ok ? TASK_SUCCEEDED : TASK_FAILED);
        return 0;
    }
    if (v == COORD_OUTVOTED) {
        settle(j, task, TASK_FAILED); /* no quorum: decided by no report */
        return 0;
    }
    if (k->nleases == 0 && k->nreports >= k->wanted) /* a split: every wanted replica reported */
        k->wanted++;
    settle(j, task, -1);
    return 0;
}

size_t coord_expire(coord_t *c, uint64_t now_ms, lease_cb cb, void *arg)
{
    endlist_t l = {0};
    for (job_t *j = c->head; j; j = j->next) {
        for (uint32_t t = j->lease_head, next; t != NONE; t = next) {
            next = j->tasks[t].next;
            task_t *k = &j->tasks[t];
            for (int i = (int)k->nleases - 1; i >= 0 && !terminal(k); i--) {
                if (i >= k->nleases || k->leases[i].end > now_ms)
                    continue;
                endlist_add(&l, j, t, c->workers[k->leases[i].worker].id);
                free(k->lapsed); /* its late report may be adopted (coord_adopt) */
                k->lapsed = xstrdup(c->workers[k->leases[i].worker].id);
                lose(c, j, t, (uint8_t)i);
            }
        }
    }
    size_t n = l.n;
    endlist_fire(c, &l, cb, arg);
    return n;
}

uint64_t coord_next_deadline(const coord_t *c)
{
    uint64_t min = UINT64_MAX;
    for (const job_t *j = c->head; j; j = j->next)
        for (uint32_t t = j->lease_head; t != NONE; t = j->tasks[t].next)
            for (uint8_t i = 0; i < j->tasks[t].nleases; i++)
                if (j->tasks[t].leases[i].end < min)
                    min = j->tasks[t].leases[i].end;
    return min;
}

/* ---- queries ---- */

int coord_counts(const coord_t *c, const char *job_id, coord_counts_t *out)
{
    const job_t *j = find(c, job_id);
    if (!j)
        return -ENOENT;
    out->total = j->ntasks;
    out->waiting = j->count[TASK_WAITING];
    out->running = j->count[TASK_RUNNING];
    out->succeeded = j->count[TASK_SUCCEEDED];
    out->failed = j->count[TASK_FAILED];
    out->cancelled = j->count[TASK_CANCELLED];
    return 0;
}

int coord_task(const coord_t *c, const char *job_id, uint32_t task, task_state_t *state, uint32_t *attempts)
{
    const job_t *j = find(c, job_id);
    if (!j || task >= j->ntasks)
        return -ENOENT;
    if (state)
        *state = (task_state_t)j->tasks[task].state;
    if (attempts)
        *attempts = j->tasks[task].attempts;
    return 0;
}

const char *coord_task_result(const coord_t *c, const char *job_id, uint32_t task)
{
    const job_t *j = find(c, job_id);
    if (!j || task >= j->ntasks || j->tasks[task].decided < 0)
        return NULL;
    return j->tasks[task].reports[j->tasks[task].decided].result;
}

size_t coord_dissenters(const coord_t *c, const char *job_id, uint32_t task, const char **workers, size_t max)
{
    const job_t *j = find(c, job_id);
    if (!j || task >= j->ntasks || j->tasks[task].decided < 0)
        return 0;
    const task_t *k = &j->tasks[task];
    const report_t *win = &k->reports[k->decided];
    size_t n = 0;
    for (uint8_t i = 0; i < k->nreports; i++) {
        if (same_result(&k->reports[i], win))
            continue;
        if (n < max && workers)
            workers[n] = k->reports[i].worker;
        n++;
    }
    return n;
}

int coord_task_votes(const coord_t *c, const char *job_id, uint32_t task, uint32_t *reports, uint32_t *agree,
                     uint32_t *wanted)
{
    const job_t *j = find(c, job_id);
    if (!j || task >= j->ntasks)
        return -ENOENT;
    const task_t *k = &j->tasks[task];
    uint32_t best = 0;
    for (uint8_t i = 0; i < k->nreports; i++) {
        uint32_t n = 0;
        for (uint8_t m = 0; m < k->nreports; m++)
            n += same_result(&k->reports[i], &k->reports[m]);
        if (k->decided >= 0 && i == (uint8_t)k->decided) {
            best = n;
            break;
        }
        if (n > best)
            best = n;
    }
    *reports = k->nreports;
    *agree = best;
    if (wanted)
        *wanted = k->wanted;
    return 0;
}

uint32_t coord_task_quorum(const coord_t *c, const char *job_id, uint32_t task)
{
    const job_t *j = find(c, job_id);
    if (!j || task >= j->ntasks)
        return 0;
    return j->tasks[task].single ? 1 : j->quorum;
}

uint32_t coord_job_quorum(const coord_t *c, const char *job_id)
{
    const job_t *j = find(c, job_id);
    return j ? j->quorum : 0;
}

bool coord_record(const coord_t *c, const char *worker, coord_record_t *out)
{
    for (uint32_t i = 0; i < c->nrecords; i++) {
        if (!strcmp(c->records[i].id, worker)) {
            *out = c->records[i].r;
            return true;
        }
    }
    return false;
}

size_t coord_records(const coord_t *c, const char **workers, coord_record_t *records, size_t max)
{
    for (uint32_t i = 0; i < c->nrecords && i < max; i++) {
        workers[i] = c->records[i].id;
        records[i] = c->records[i].r;
    }
    return c->nrecords;
}

size_t coord_holders(const coord_t *c, const char *job_id, uint32_t task, const char **workers, size_t max)
{
    const job_t *j = find(c, job_id);
    if (!j || task >= j->ntasks)
        return 0;
    const task_t *k = &j->tasks[task];
    for (uint8_t i = 0; i < k->nleases && i < max; i++)
        workers[i] = c->workers[k->leases[i].worker].id;
    return k->nleases;
}

uint32_t coord_leases(const coord_t *c)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (c->workers[i].id)
            n += c->workers[i].nleases;
    return n;
}

size_t coord_job_leased(const coord_t *c, const char *job_id, uint32_t *tasks, size_t max)
{
    const job_t *j = find(c, job_id);
    size_t n = 0;
    for (uint32_t t = j ? j->lease_head : NONE; t != NONE; t = j->tasks[t].next, n++)
        if (n < max)
            tasks[n] = t;
    return n;
}

int coord_tasks_info(const coord_t *c, const char *job_id, const uint32_t *tasks, size_t n, coord_task_info_t *out)
{
    const job_t *j = find(c, job_id);
    if (!j)
        return -ENOENT;
    for (size_t i = 0; i < n; i++) {
        if (tasks[i] >= j->ntasks)
            return -EINVAL;
        const task_t *k = &j->tasks[tasks[i]];
        out[i] = (coord_task_info_t){.state = (task_state_t)k->state, .attempts = k->attempts,
                                     .holder = k->nleases ? c->workers[k->leases[0].worker].id : NULL};
    }
    return 0;
}

bool coord_job_over(const coord_t *c, const char *job_id)
{
    const job_t *j = find(c, job_id);
    return j && j->count[TASK_WAITING] == 0 && j->count[TASK_RUNNING] == 0;
}

const char *coord_state_name(task_state_t st)
{
    switch (st) {
    case TASK_WAITING: return "waiting";
    case TASK_RUNNING: return "running";
    case TASK_SUCCEEDED: return "succeeded";
    case TASK_FAILED: return "failed";
    case TASK_CANCELLED: return "cancelled";
    }
    return "unknown";
}

const char *coord_verdict_name(coord_verdict_t v)
{
    switch (v) {
    case COORD_ACCEPTED: return "accepted";
    case COORD_PENDING: return "pending";
    case COORD_DUPLICATE: return "duplicate";
    case COORD_LATE: return "late";
    case COORD_OUTVOTED: return "outvoted";
    }
    return "unknown";
}
