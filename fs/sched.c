/*
 * sched.c: sans-I/O task scheduling (which task runs next, leases, retries, per-state counts).
 *
 * Nothing here reads a clock or touches a file: time comes in as now_ms, so every path is tested
 * with plain numbers. Jobs sit in a list in the order they were added (first published, first
 * served); each owns an array of tasks. Three structures keep the hot calls cheap for a job of
 * SCHED_MAX_TASKS tasks:
 *  - per-job counts of each state, updated on every transition, so sched_counts is O(1);
 *  - a min-heap of task indices that may be WAITING, so sched_next takes the lowest waiting index
 *    in O(log n) even when lost tasks fall back to WAITING below tasks already handed out. Entries
 *    are deleted lazily: a task stays in the heap (in_heap) after it stops waiting and is dropped
 *    when it reaches the top. A task is pushed only if not already in, so the heap never holds
 *    more than ntasks entries;
 *  - an intrusive doubly-linked list of RUNNING tasks, so lease expiry and the next deadline cost
 *    O(running tasks), which is bounded by the worker slots, not by the job's size.
 * Finding a job by id is a linear scan of the job list: O(jobs), few on one peer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "fs/sched.h"

#define NONE UINT32_MAX /* end of a running list */

typedef struct task {
    uint64_t lease_end; /**< RUNNING only */
    uint32_t attempts;
    uint32_t prev, next; /**< running list links, RUNNING only */
    uint8_t state;       /**< task_state_t */
    bool in_heap;
} task_t;

typedef struct job {
    char *id;
    uint32_t ntasks, max_attempts;
    task_t *tasks;
    uint32_t *heap; /**< min-heap of task indices; see the top of the file */
    uint32_t nheap;
    uint32_t run_head; /**< first RUNNING task, or NONE */
    uint32_t count[TASK_CANCELLED + 1];
    bool removed;      /**< removed during sched_expire's callbacks: freed when they are done */
    struct job *next;
} job_t;

struct sched {
    job_t *head, *tail;
    bool expiring;     /**< inside sched_expire's callback loop */
    job_t *graveyard;  /**< jobs removed while expiring, freed at its end */
};

static void job_free(job_t *j)
{
    free(j->id);
    free(j->tasks);
    free(j->heap);
    free(j);
}

sched_t *sched_new(void)
{
    return xcalloc(1, sizeof(sched_t));
}

void sched_free(sched_t *s)
{
    if (!s)
        return;
    for (job_t *j = s->head, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    for (job_t *j = s->graveyard, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    free(s);
}

static job_t *find(const sched_t *s, const char *job_id)
{
    if (!job_id)
        return NULL;
    for (job_t *j = s->head; j; j = j->next)
        if (strcmp(j->id, job_id) == 0)
            return j;
    return NULL;
}

/* heap of task indices, smallest on top */

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
        uint32_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && j->heap[c + 1] < j->heap[c])
            c++;
        if (last <= j->heap[c])
            break;
        j->heap[i] = j->heap[c];
        i = c;
    }
    if (n > 0)
        j->heap[i] = last;
    j->tasks[top].in_heap = false;
    return top;
}

/* running list */

static void run_link(job_t *j, uint32_t t)
{
    task_t *k = &j->tasks[t];
    k->prev = NONE;
    k->next = j->run_head;
    if (j->run_head != NONE)
        j->tasks[j->run_head].prev = t;
    j->run_head = t;
}

static void run_unlink(job_t *j, uint32_t t)
{
    task_t *k = &j->tasks[t];
    if (k->prev != NONE)
        j->tasks[k->prev].next = k->next;
    else
        j->run_head = k->next;
    if (k->next != NONE)
        j->tasks[k->next].prev = k->prev;
    k->prev = k->next = NONE;
}

/* The one place a task changes state: keeps the counts, the heap and the running list true. */
static void set_state(job_t *j, uint32_t t, task_state_t st)
{
    task_t *k = &j->tasks[t];
    if (k->state == st)
        return;
    if (k->state == TASK_RUNNING)
        run_unlink(j, t);
    j->count[k->state]--;
    j->count[st]++;
    k->state = (uint8_t)st;
    if (st == TASK_RUNNING)
        run_link(j, t);
    else if (st == TASK_WAITING)
        heap_push(j, t);
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int sched_add_job(sched_t *s, const char *job_id, uint32_t ntasks, uint32_t max_attempts)
{
    if (!job_id || ntasks == 0 || ntasks > SCHED_MAX_TASKS || max_attempts == 0)
        return -EINVAL;
    if (find(s, job_id))
        return -EEXIST;
    job_t *j = xcalloc(1, sizeof(*j));
    j->id = xstrdup(job_id);
    j->ntasks = ntasks;
    j->max_attempts = max_attempts;
    j->tasks = xcalloc(ntasks, sizeof(*j->tasks));
    j->heap = xcalloc(ntasks, sizeof(*j->heap));
    /* 0..n-1 in order is already a valid min-heap. */
    for (uint32_t i = 0; i < ntasks; i++) {
        j->tasks[i].state = TASK_WAITING;
        j->tasks[i].in_heap = true;
        j->tasks[i].prev = j->tasks[i].next = NONE;
        j->heap[i] = i;
    }
    j->nheap = ntasks;
    j->run_head = NONE;
    j->count[TASK_WAITING] = ntasks;
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    return 0;
}

int sched_remove_job(sched_t *s, const char *job_id)
{
    job_t *prev = NULL, *j;
    if (!job_id)
        return -ENOENT;
    for (j = s->head; j; prev = j, j = j->next)
        if (strcmp(j->id, job_id) == 0)
            break;
    if (!j)
        return -ENOENT;
    if (prev)
        prev->next = j->next;
    else
        s->head = j->next;
    if (s->tail == j)
        s->tail = prev;
    if (s->expiring) {
        /* sched_expire still holds pointers to it for the callbacks it has yet to make */
        j->removed = true;
        j->next = s->graveyard;
        s->graveyard = j;
    } else {
        job_free(j);
    }
    return 0;
}

bool sched_has_job(const sched_t *s, const char *job_id)
{
    return find(s, job_id) != NULL;
}

int sched_cancel_job(sched_t *s, const char *job_id)
{
    job_t *j = find(s, job_id);
    if (!j)
        return -ENOENT;
    for (uint32_t t = 0; t < j->ntasks; t++)
        if (j->tasks[t].state == TASK_WAITING || j->tasks[t].state == TASK_RUNNING)
            set_state(j, t, TASK_CANCELLED);
    return 0;
}

int sched_restore(sched_t *s, const char *job_id, uint32_t task, task_state_t state, uint32_t attempts)
{
    job_t *j = find(s, job_id);
    if (!j || task >= j->ntasks)
        return -ENOENT;
    if ((unsigned)state > TASK_CANCELLED)
        return -EINVAL;
    if (state == TASK_RUNNING)
        state = TASK_WAITING; /* the process that ran it is gone */
    set_state(j, task, state);
    j->tasks[task].attempts = attempts;
    return 0;
}

/* Hands out j's lowest waiting task, if any. */
static bool take(job_t *j, uint64_t now_ms, uint64_t lease_ms, uint32_t *task)
{
    if (j->count[TASK_WAITING] == 0)
        return false;
    /* A waiting task is always in the heap, so this finds one before the heap runs dry. */
    while (j->nheap > 0) {
        uint32_t t = heap_pop(j);
        task_t *k = &j->tasks[t];
        if (k->state != TASK_WAITING)
            continue; /* a lazily deleted entry */
        set_state(j, t, TASK_RUNNING);
        k->attempts++;
        k->lease_end = add_sat(now_ms, lease_ms);
        *task = t;
        return true;
    }
    return false;
}

bool sched_next(sched_t *s, uint64_t now_ms, uint64_t lease_ms, const char **job_id, uint32_t *task)
{
    for (job_t *j = s->head; j; j = j->next) {
        if (take(j, now_ms, lease_ms, task)) {
            *job_id = j->id;
            return true;
        }
    }
    return false;
}

bool sched_next_in(sched_t *s, const char *job_id, uint64_t now_ms, uint64_t lease_ms, uint32_t *task)
{
    job_t *j = find(s, job_id);
    return j && take(j, now_ms, lease_ms, task);
}

/* Looks up a task that must be RUNNING. */
static int running_task(const sched_t *s, const char *job_id, uint32_t task, job_t **out)
{
    job_t *j = find(s, job_id);
    if (!j || task >= j->ntasks)
        return -ENOENT;
    if (j->tasks[task].state != TASK_RUNNING)
        return -EINVAL;
    *out = j;
    return 0;
}

int sched_renew(sched_t *s, const char *job_id, uint32_t task, uint64_t now_ms, uint64_t lease_ms)
{
    job_t *j;
    int rc = running_task(s, job_id, task, &j);
    if (rc < 0)
        return rc;
    j->tasks[task].lease_end = add_sat(now_ms, lease_ms);
    return 0;
}

int sched_finish(sched_t *s, const char *job_id, uint32_t task, bool ok)
{
    job_t *j;
    int rc = running_task(s, job_id, task, &j);
    if (rc < 0)
        return rc;
    set_state(j, task, ok ? TASK_SUCCEEDED : TASK_FAILED);
    return 0;
}

int sched_release(sched_t *s, const char *job_id, uint32_t task)
{
    job_t *j;
    int rc = running_task(s, job_id, task, &j);
    if (rc < 0)
        return rc;
    if (j->tasks[task].attempts > 0)
        j->tasks[task].attempts--;
    set_state(j, task, TASK_WAITING);
    return 0;
}

static void lose(job_t *j, uint32_t t)
{
    set_state(j, t, j->tasks[t].attempts < j->max_attempts ? TASK_WAITING : TASK_FAILED);
}

int sched_lost(sched_t *s, const char *job_id, uint32_t task)
{
    job_t *j;
    int rc = running_task(s, job_id, task, &j);
    if (rc < 0)
        return rc;
    lose(j, task);
    return 0;
}

typedef struct expired {
    job_t *job;
    uint32_t task;
} expired_t;

/*
 * Two passes: first every expired lease is returned (so the state is final before any callback
 * runs), then the callbacks. A callback may call back into the scheduler, even remove a job: a job
 * removed meanwhile is kept in the graveyard until the loop ends, and its remaining callbacks are
 * skipped.
 */
size_t sched_expire(sched_t *s, uint64_t now_ms, void (*cb)(void *arg, const char *job_id, uint32_t task),
                    void *arg)
{
    expired_t *ex = NULL;
    size_t n = 0, cap = 0;
    for (job_t *j = s->head; j; j = j->next) {
        for (uint32_t t = j->run_head, next; t != NONE; t = next) {
            next = j->tasks[t].next;
            if (j->tasks[t].lease_end > now_ms)
                continue;
            lose(j, t);
            if (!cb) {
                n++;
                continue;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                ex = xreallocarray(ex, cap, sizeof(*ex));
            }
            ex[n++] = (expired_t){j, t};
        }
    }
    if (cb && n > 0 && !s->expiring) {
        s->expiring = true;
        for (size_t i = 0; i < n; i++)
            if (!ex[i].job->removed)
                cb(arg, ex[i].job->id, ex[i].task);
        s->expiring = false;
        for (job_t *j = s->graveyard, *next; j; j = next) {
            next = j->next;
            job_free(j);
        }
        s->graveyard = NULL;
    } else if (cb) {
        /* sched_expire called from its own callback: the outer call owns the graveyard */
        for (size_t i = 0; i < n; i++)
            if (!ex[i].job->removed)
                cb(arg, ex[i].job->id, ex[i].task);
    }
    free(ex);
    return n;
}

uint64_t sched_next_deadline(const sched_t *s)
{
    uint64_t min = UINT64_MAX;
    for (const job_t *j = s->head; j; j = j->next)
        for (uint32_t t = j->run_head; t != NONE; t = j->tasks[t].next)
            if (j->tasks[t].lease_end < min)
                min = j->tasks[t].lease_end;
    return min;
}

int sched_counts(const sched_t *s, const char *job_id, sched_counts_t *out)
{
    const job_t *j = find(s, job_id);
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

int sched_task(const sched_t *s, const char *job_id, uint32_t task, task_state_t *state, uint32_t *attempts)
{
    const job_t *j = find(s, job_id);
    if (!j || task >= j->ntasks)
        return -ENOENT;
    if (state)
        *state = (task_state_t)j->tasks[task].state;
    if (attempts)
        *attempts = j->tasks[task].attempts;
    return 0;
}

/* An unknown job is not "over": there is nothing to report about it. */
bool sched_job_over(const sched_t *s, const char *job_id)
{
    const job_t *j = find(s, job_id);
    return j && j->count[TASK_WAITING] == 0 && j->count[TASK_RUNNING] == 0;
}

const char *sched_state_name(task_state_t st)
{
    switch (st) {
    case TASK_WAITING:
        return "waiting";
    case TASK_RUNNING:
        return "running";
    case TASK_SUCCEEDED:
        return "succeeded";
    case TASK_FAILED:
        return "failed";
    case TASK_CANCELLED:
        return "cancelled";
    }
    return "unknown";
}
