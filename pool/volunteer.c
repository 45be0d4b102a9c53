/*
 * volunteer.c: tasks of one peer's job run on other peers of the pool (docs/protocol.md).
 *
 * Submitter side (the peer that published the job): recruits at once: on publishing, and whenever
 * it learns of a new pool peer while tasks wait, it offers the job to its pool peers (/v1/offer,
 * fire-and-forget; the 1 s /v1/jobs poll is only the fallback). It answers lease requests out of its
 * coordination core (pool/coord.h: coord_lease for that worker, up to n tasks per request, each a lease of --lease-ms that the
 * volunteer renews), takes back tasks a volunteer leased but could not start (/v1/release), expires
 * the leases of volunteers that stop renewing (the task waits again and goes to someone else), and,
 * when a volunteer reports a task done, takes a small result from the report itself (pool/bundle.c:
 * checked against its block hashes first) or else fetches the result manifest and every block of it
 * from that volunteer (verified by the fetcher); then writes the files into results/<job>/<task>/
 * and records the task, with the time from hand-out to result (status: dispatch-ms-*).
 *
 * Volunteer side: greets every new pool peer (/v1/hello, so a submitter knows whom to offer to); on
 * an offer, fetches the manifest of a new job and asks for work at once. With free slots, asks the
 * submitter of a remote job it can run for as many tasks as it has free slots, runs each in the
 * sandbox exactly like a local one (its inputs read lazily through this peer's own mount), renews the
 * lease while it runs, then hashes the outputs into its block store, keeps the result manifest in its
 * outbox (served at /v1/result/<job>/<task>) and tells the submitter, with the result inline if it
 * is small; a freed slot asks for the next task right away.
 *
 * Requests are GETs with the sender's base URL in ?peer= (the fetcher speaks GET), signed by the
 * sender's key for the receiver (trust.c, pool/auth.h: checked before anything here runs, admitted
 * once). A worker is its key: leases are held by keys, and each worker's base URL (where its cancel
 * and result go) is where its last signed request came from. Each result is named by the id of its
 * result manifest, signed by its worker; the submitter counts reports as votes (replicas, quorum:
 * the candidates below) and keeps a result only once the coordination core accepts it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "core/files.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "pool/auth.h"
#include "pool/bundle.h"
#include "pool/internal.h"
#include "pool/work.h"
#include "pool/wire.h"

#define VOL_ALIVE_MS 10000         /* a volunteer heard from this recently is not dropped (discover.c's window) */
#define VOL_RELEASE_RETRY_MS 1000   /* a release with a checkpoint the submitter is still fetching: asked again */
#define VOL_RETRY_MS 1000           /* after "no task" or an error, ask that job again after this */
#define VOL_MAX_URL 512
#define VOL_MAX_LEASE WIRE_MAX_LEASE /* tasks one lease request may ask for and one answer may give */
#define VOL_DECLINE_EVERY_MS 5000   /* a reason not to run a job is told its submitter again this often */
#define VOL_DECLINE_MIN_MS 1000     /* ... and a changed one at most this often, per job */
#define VOL_MAX_DECLINES_PER_TICK 16 /* decline requests sent per second, in all */
#define VOL_MAX_DECLINE_CHECKS_PER_TICK 64 /* jobs looked at per second for a reason to decline */

#define VOL_REPORT_RETRY_MIN_MS 1000  /* a report the submitter did not answer: sent again after this, */
#define VOL_REPORT_RETRY_MAX_MS 8000  /* ... doubling up to this while it does not answer */
#define VOL_REPORT_AGAIN_MS 10000     /* a report answered, whose result is not listed yet: sent again after
                                         this (the submitter may have restarted before it had the result) */
#define VOL_REPORT_AGAIN_MAX_MS 60000 /* ... doubling up to this */
#define VOL_OUTBOX_KEEP_MS (7 * 24 * 3600 * 1000ll) /* a kept result of a job not listed since the restart:
                                                        dropped after this (its submitter may never come back) */

/*
 * A finished task's result kept here until the submitter lists it (pool__vol_result_taken): its
 * manifest (served at /v1/result/<job>/<task>) and its done report, sent again while the submitter
 * does not answer (killed, restarting) and, once answered, from time to time until the result is
 * listed: a submitter that restarted before it had the result takes the report again (a report
 * without a lease is adopted: coord_adopt), and one that leases the task again here gets the
 * report at once instead of a second run.
 *
 * Each is recorded in the database too (db_post_outbox_put, dropped with it), so a volunteer killed
 * or stopped before its submitter had a result still has it when it starts again (pool__vol_outbox_load):
 * its files in DATA/results/<job>/<task>, its blocks in the store (never evicted while kept: cache.c),
 * its manifest and report in the row. Such a result waits for its job to be listed again by its
 * submitter (up to VOL_OUTBOX_KEEP_MS), then is reported as before.
 */
struct outbox {
    char id[HASH_HEX_LEN + 1];
    uint32_t task;
    char *bytes; /* canonical manifest of the result files */
    size_t len;
    char *query;        /* the done report's query: its head, then the result inline if any */
    size_t head_len;    /* the head alone (the report when the query makes too long a URL) */
    int64_t created_ms; /* wall clock: when the result was made */
    bool restored;      /* loaded at start-up, its job not listed here since */
    bool sending;       /* a send is under way */
    uint64_t next_ms;   /* when to send it again (pool_now_ms); 0: not before it is answered */
    uint32_t wait_ms;   /* the next wait: grows while the submitter does not answer or does not list it */
    bool answered;      /* the submitter answered a send (the waits are VOL_REPORT_AGAIN_MS's) */
    bool again_now;     /* leased again while a send was under way: sent once more as soon as it is answered */
    struct outbox *next;
};

static struct outbox *outbox_find(pool_t *pool, const char *id, uint32_t task)
{
    for (struct outbox *o = pool->outbox; o; o = o->next)
        if (o->task == task && !strcmp(o->id, id))
            return o;
    return NULL;
}

static void outbox_free(struct outbox *o)
{
    free(o->bytes);
    free(o->query);
    free(o);
}

/* Its record goes too (a kill before the delete commits only makes it reported once more). */
static void outbox_forget(pool_t *pool, struct outbox *o)
{
    if (pool->db)
        db_post_outbox_delete(pool->db, o->id, o->task, NULL, NULL);
    pool__rm_later(pool, xasprintf("%s/results/%s/%u", pool->data_dir, o->id, o->task), NULL);
    outbox_free(o);
}

/*
 * The submitter has task's result (this peer now mirrors it from the submitter's list, results.c):
 * the copy kept for it here, its manifest in the outbox and the task's directory, can go. Its
 * blocks stay in the store, as any other verified block.
 */
void pool__vol_result_taken(pool_t *pool, job_t *j, uint32_t task)
{
    for (struct outbox **pp = &pool->outbox; *pp; pp = &(*pp)->next) {
        struct outbox *o = *pp;
        if (o->task != task || strcmp(o->id, j->id) != 0)
            continue;
        *pp = o->next;
        outbox_forget(pool, o);
        return;
    }
}

static uint64_t lease_ms(const pool_t *pool) { return pool->opts.lease_ms ? pool->opts.lease_ms : 30000; }

static job_t *local_job(pool_t *pool, const char *id)
{
    for (job_t *j = pool->joblist; j; j = j->next)
        if (j->published && !j->remote && !j->gone && strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

/* ---- volunteer side ---- */

typedef struct vreq {
    pool_t *pool;
    job_t *job;
    uint32_t task;
    unsigned tries; /* a release with a checkpoint: how often it was asked (on_release_ckpt_ack) */
} vreq_t;

static bool can_run(pool_t *pool, job_t *j)
{
    char why[512];
    pool__job_fits(pool, j, why, sizeof(why), NULL);
    if (why[0] && !j->unfit_logged) {
        j->unfit_logged = true;
        log_info("job %s: not volunteering: %s", j->name, why);
    }
    return !why[0];
}

/* The target of a request to j's submitter (xmalloc'd); task UINT32_MAX: none. */
static char *vol_url(pool_t *pool, const job_t *j, const char *what, uint32_t task, const char *extra)
{
    if (task == UINT32_MAX)
        return xasprintf("/v1/%s/%s?peer=%s%s", what, j->id, pool->opts.http_url, extra ? extra : "");
    return xasprintf("/v1/%s/%s/%u?peer=%s%s", what, j->id, task, pool->opts.http_url, extra ? extra : "");
}

/* Sends target (taken), signed, to j's submitter; cb gets a vreq_t (*out, may be NULL). 0, or
 * -errno and cb never fires. */
static int vol_send_v(pool_t *pool, job_t *j, uint32_t task, char *target, fetch_get_cb cb, vreq_t **out)
{
    vreq_t *v = xcalloc(1, sizeof(*v));
    if (out)
        *out = v;
    v->pool = pool;
    v->job = j;
    v->task = task;
    pool_job_ref(j);
    int rc = pool__sget(pool, j->peers[0], target, 4096, cb, v);
    if (rc) {
        log_warn("job %s: GET %s%.80s...: %s", j->name, j->peers[0], target, strerror(-rc));
        pool_job_unref(j);
        free(v);
    }
    free(target);
    return rc;
}

static int vol_send(pool_t *pool, job_t *j, uint32_t task, char *target, fetch_get_cb cb)
{
    return vol_send_v(pool, j, task, target, cb, NULL);
}

static int vol_get(pool_t *pool, job_t *j, const char *what, uint32_t task, const char *extra, fetch_get_cb cb)
{
    return vol_send(pool, j, task, vol_url(pool, j, what, task, extra), cb);
}

static void on_ack(int status, unsigned code, const char *body, size_t len, void *arg);

/* A release or a done report answered (or failed): pool_drain waits for them. */
static void on_report_ack(int status, unsigned code, const char *body, size_t len, void *arg)
{
    pool_t *pool = ((vreq_t *)arg)->pool;
    on_ack(status, code, body, len, arg);
    pool->reports_pending--;
    pool__drain_check(pool);
}

static int release_ckpt_send(pool_t *pool, job_t *j, uint32_t task, const char *id, unsigned tries);

/* A release again after VOL_RELEASE_RETRY_MS: still counted in reports_pending (pool_drain waits). */
typedef struct relretry {
    uv_timer_t timer;
    pool_t *pool;
    job_t *job;
    uint32_t task;
    unsigned tries;
    struct relretry *next; /* pool->relretries */
} relretry_t;

static void relretry_closed(uv_handle_t *h) { free(h->data); }

static void relretry_unlink(relretry_t *k)
{
    for (relretry_t **pp = &k->pool->relretries; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            break;
        }
}

static void on_relretry(uv_timer_t *t)
{
    relretry_t *k = t->data;
    pool_t *pool = k->pool;
    relretry_unlink(k);
    const char *id = pool__ckpt_id(pool, k->job, k->task);
    if (!pool->stopping && !k->job->gone && id)
        release_ckpt_send(pool, k->job, k->task, id, k->tries);
    pool->reports_pending--;
    pool_job_unref(k->job);
    uv_close((uv_handle_t *)t, relretry_closed);
    pool__drain_check(pool);
}

/* A release with a checkpoint answered: 200, the submitter holds it now (the copy here goes); 202, it
 * is fetching it, and 503, it cannot yet: asked again in a while (as long as the long lease a
 * checkpoint gets); 409 or anything else: the task went on without it (the copy here goes). */
static void on_release_ckpt_ack(int status, unsigned code, const char *body, size_t len, void *arg)
{
    vreq_t *v = arg;
    pool_t *pool = v->pool;
    job_t *j = v->job;
    uint32_t task = v->task;
    unsigned tries = v->tries;
    pool_job_ref(j);
    bool here = false;
    for (running_t *r = pool->running; r; r = r->next)
        here |= r->remote && r->job == j && r->task == task;
    bool again = (status || code == 202 || code == 503) && tries < POOL_CKPT_LEASE_MS / VOL_RELEASE_RETRY_MS;
    if (again && !pool->stopping && !j->gone && !here) {
        relretry_t *k = xcalloc(1, sizeof(*k));
        k->pool = pool;
        k->job = j;
        k->task = task;
        k->tries = tries + 1;
        pool_job_ref(j);
        pool->reports_pending++; /* until on_relretry */
        k->next = pool->relretries;
        pool->relretries = k;
        uv_timer_init(pool->loop, &k->timer);
        k->timer.data = k;
        uv_timer_start(&k->timer, on_relretry, VOL_RELEASE_RETRY_MS, 0);
    } else if (!here && !pool__ckpt_fetching(pool, j, task) && !pool->stopping) {
        if (code != 200)
            log_warn("job %s task %u: the submitter did not take its checkpoint (%s %u)", j->name, task,
                     status ? strerror(-status) : "HTTP", code);
        pool__ckpt_drop(pool, j, task);
    }
    on_report_ack(status, code, body, len, arg);
    pool_job_unref(j);
}

/* vol_send of a release or a done report, counted in reports_pending until it is answered. */
static int report_send(pool_t *pool, job_t *j, uint32_t task, char *target)
{
    pool->reports_pending++;
    int rc = vol_send(pool, j, task, target, on_report_ack);
    if (rc)
        pool->reports_pending--;
    return rc;
}

/* When o's report goes again: soon while the submitter does not answer, later once it has. */
static void outbox_schedule(struct outbox *o, bool answered)
{
    if (answered != o->answered || !o->wait_ms) {
        o->answered = answered;
        o->wait_ms = answered ? VOL_REPORT_AGAIN_MS : VOL_REPORT_RETRY_MIN_MS;
    }
    o->next_ms = pool_now_ms() + o->wait_ms;
    uint32_t max = answered ? VOL_REPORT_AGAIN_MAX_MS : VOL_REPORT_RETRY_MAX_MS;
    o->wait_ms = o->wait_ms >= max / 2 ? max : o->wait_ms * 2;
    if (o->again_now) {
        o->again_now = false;
        o->next_ms = pool_now_ms();
    }
}

static void outbox_send(pool_t *pool, job_t *j, struct outbox *o);

/* One kept result from the database (start-up): checked as any input, then waits for its job. */
static int outbox_load_one(void *arg, const db_outbox_t *row)
{
    pool_t *pool = arg;
    hash_t h;
    size_t qlen = strlen(row->report);
    bool ok = strlen(row->job_id) == HASH_HEX_LEN && hash_from_hex(row->job_id, HASH_HEX_LEN, &h) == 0 &&
              row->created_ms >= 0 &&
              row->manifest_len > 0 && row->manifest_len <= MANIFEST_MAX_BYTES && qlen <= FETCH_MAX_GET_URL &&
              !outbox_find(pool, row->job_id, row->task);
    for (size_t i = 0; ok && i < qlen; i++)
        ok = (unsigned char)row->report[i] > 0x20 && (unsigned char)row->report[i] < 0x7f;
    if (!ok) {
        log_error("a kept result in the database is unreadable and is dropped (job %.16s task %u)", row->job_id,
                  row->task);
        db_post_outbox_delete(pool->db, row->job_id, row->task, NULL, NULL);
        return 0;
    }
    struct outbox *o = xcalloc(1, sizeof(*o));
    memcpy(o->id, row->job_id, HASH_HEX_LEN);
    o->task = row->task;
    o->bytes = xmalloc(row->manifest_len + 1);
    memcpy(o->bytes, row->manifest, row->manifest_len);
    o->bytes[row->manifest_len] = '\0';
    o->len = row->manifest_len;
    o->query = xstrdup(row->report);
    o->head_len = row->head_len;
    int64_t now = (int64_t)pool_now_ms();
    o->created_ms = row->created_ms > now ? now : row->created_ms; /* the clock stepped back: kept from now */
    o->restored = true;
    o->next_ms = 1; /* due as soon as its job is listed here */
    o->next = pool->outbox;
    pool->outbox = o;
    return 0;
}

void pool__vol_outbox_load(pool_t *pool)
{
    db_outbox_load(pool->db, outbox_load_one, pool);
    size_t n = 0;
    for (struct outbox *o = pool->outbox; o; o = o->next)
        n++;
    if (n)
        log_info("%zu result%s of other peers' jobs kept from before the restart: reported once %s listed again",
                 n, n == 1 ? "" : "s", n == 1 ? "its job is" : "their jobs are");
}

char **pool__vol_outbox_manifests(pool_t *pool, size_t **lens, size_t *n)
{
    *n = 0;
    for (struct outbox *o = pool->outbox; o; o = o->next)
        (*n)++;
    char **out = *n ? xcalloc(*n, sizeof(char *)) : NULL;
    *lens = *n ? xcalloc(*n, sizeof(size_t)) : NULL;
    size_t i = 0;
    for (struct outbox *o = pool->outbox; o; o = o->next, i++) {
        out[i] = xmalloc(o->len + 1);
        memcpy(out[i], o->bytes, o->len + 1);
        (*lens)[i] = o->len;
    }
    return out;
}

/* Drops o (its submitter took the result, refused it or forgot the job): its copy goes too. */
static void outbox_drop(pool_t *pool, struct outbox *o)
{
    for (struct outbox **pp = &pool->outbox; *pp; pp = &(*pp)->next) {
        if (*pp != o)
            continue;
        *pp = o->next;
        outbox_forget(pool, o);
        return;
    }
}

/*
 * A done report answered, or not. No answer (the submitter is down or restarting), 401 (a key it
 * cannot check yet), 429 or 5xx: sent again soon, the result kept. 2xx or 409 (taken, being judged,
 * or the task is another worker's now): sent again later, until the result is listed. 400, 403, 404,
 * 410: the submitter will never take it: the copy goes.
 */
static void on_done_ack(int status, unsigned code, const char *body, size_t len, void *arg)
{
    vreq_t *v = arg;
    pool_t *pool = v->pool;
    job_t *j = v->job;
    struct outbox *o = outbox_find(pool, j->id, v->task);
    bool gone = !status && (code == 400 || code == 403 || code == 404 || code == 410);
    bool answered = !status && code != 401 && code != 429 && code < 500;
    if (!answered && (!o || !o->answered) && (!o || o->wait_ms <= VOL_REPORT_RETRY_MIN_MS))
        log_warn("job %s task %u: the submitter did not take the report (%s %u): the result is kept here and "
                 "reported again", j->name, v->task, status ? strerror(-status) : "HTTP", code);
    else if (gone)
        log_warn("job %s task %u: the submitter refused the report (HTTP %u): the result here is dropped", j->name,
                 v->task, code);
    if (o) {
        o->sending = false;
        if (gone)
            outbox_drop(pool, o);
        else
            outbox_schedule(o, answered);
    }
    pool_job_unref(j);
    free(v);
    pool->reports_pending--;
    pool__drain_check(pool);
    (void)body;
    (void)len;
}

/* Sends o's done report to j's submitter, counted in reports_pending until it is answered. */
static void outbox_send(pool_t *pool, job_t *j, struct outbox *o)
{
    o->sending = true;
    o->next_ms = 0;
    o->restored = false;
    pool->reports_pending++;
    char *url = vol_url(pool, j, "done", o->task, o->query);
    if (strlen(url) > FETCH_MAX_GET_URL) { /* a long peer URL: the result goes the usual way */
        char *head = xstrndup(o->query, o->head_len);
        free(url);
        url = vol_url(pool, j, "done", o->task, head);
        free(head);
    }
    if (vol_send(pool, j, o->task, url, on_done_ack) != 0) {
        pool->reports_pending--;
        o->sending = false;
        outbox_schedule(o, false);
    }
}

/* Every second: the reports due again; the results of jobs no longer here go. */
static void outbox_tick(pool_t *pool)
{
    uint64_t now = pool_now_ms();
    for (struct outbox *o = pool->outbox, *next; o; o = next) {
        next = o->next;
        if (o->sending || !o->next_ms || now < o->next_ms)
            continue;
        job_t *j = pool_job_by_id(pool, o->id);
        if (!j && o->restored && (int64_t)pool_now_ms() - o->created_ms < VOL_OUTBOX_KEEP_MS)
            continue; /* kept from before a restart: its job is not listed here again yet */
        if (!j || !j->remote) {
            if (o->restored)
                log_warn("job %.16s task %u: its result, kept since before a restart, is dropped: the job was "
                         "not listed by its submitter for %lld days", o->id, o->task,
                         (long long)(VOL_OUTBOX_KEEP_MS / (24 * 3600 * 1000ll)));
            outbox_drop(pool, o);
            continue;
        }
        if (j->n_peers)
            outbox_send(pool, j, o);
    }
}

static void on_lease_ckpt(pool_t *pool, job_t *j, uint32_t task, int status, void *arg);

/* A leased task of j waiting for its checkpoint (sign 1) or no longer (-1): it holds a slot, its
 * memory and its disk meanwhile (pool__room). */
static void ckpt_pending_add(pool_t *pool, const job_t *j, int sign)
{
    pool->ckpt_pending += (unsigned)sign;
    pool->ckpt_pending_mem += (uint64_t)(int64_t)sign * j->man.desc.memory_bytes;
    pool->ckpt_pending_disk += (uint64_t)(int64_t)sign * j->man.desc.disk_bytes;
}

static void on_lease(int status, unsigned code, const char *body, size_t len, void *arg)
{
    vreq_t *v = arg;
    pool_t *pool = v->pool;
    job_t *j = v->job;
    j->lease_pending = false;
    j->lease_asked = 0;
    j->lease_retry_ms = pool_now_ms() + VOL_RETRY_MS;
    if (!status && code == 200 && !pool->stopping) {
        wire_lease_t l;
        size_t dropped = 0;
        char why[128];
        char list[WIRE_MAX_LEASE * 18] = "";
        if (wire_lease_decode(body, len, j->man.desc.tasks, &l, &dropped, why, sizeof(why)) != 0)
            log_warn("job %s: a bad lease answer from %s: %s", j->name, j->peers[0], why);
        else if (dropped)
            log_warn("job %s: %zu bad tasks in the lease answer from %s", j->name, dropped, j->peers[0]);
        uint64_t lms = l.lease_ms;
        for (size_t i = 0; i < l.n; i++) {
            uint32_t t = l.tasks[i];
            bool here = false;
            for (running_t *r = pool->running; r; r = r->next)
                here |= r->remote && r->job == j && r->task == t;
            here |= pool__ckpt_fetching(pool, j, t); /* about to start, once its checkpoint is here */
            if (here) { /* an honest submitter never leases us a task we run: refuse to run it twice */
                log_warn("job %s: %s leased task %u again while it runs here: ignored", j->name, j->peers[0], t);
                continue;
            }
            struct outbox *o = outbox_find(pool, j->id, t);
            if (o) { /* run here already, the result kept for the submitter (which restarted): no second run */
                pool__note(pool, LOG_LEVEL_INFO, "job %s: task %u leased again from %s: its result is here, "
                           "reported again", j->name, t, j->peers[0]);
                if (o->sending)
                    o->again_now = true;
                else
                    outbox_send(pool, j, o);
                continue;
            }
            uint64_t *box = NULL;
            if (!l.ckpt[i][0])
                pool__ckpt_drop(pool, j, t); /* a copy kept here from an earlier run is not this run's */
            if (!j->gone && l.ckpt[i][0] && pool__room(pool, j, 0, 0, 0) > 0) { /* the slot waits for it */
                box = xmalloc(sizeof(*box));
                *box = lms;
                ckpt_pending_add(pool, j, 1);
                pool_job_ref(j);
                if (pool__ckpt_fetch(pool, j, t, j->peers[0], l.ckpt[i], on_lease_ckpt, box) != 0) {
                    ckpt_pending_add(pool, j, -1);
                    pool__ckpt_drop(pool, j, t);
                    pool_job_unref(j);
                    free(box);
                    box = NULL;
                    log_warn("job %s task %u: its checkpoint cannot be fetched: it starts from the beginning",
                             j->name, t);
                }
            }
            if (box) {
                j->lease_retry_ms = 0;
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%u+ckpt", list[0] ? "," : "", t);
            } else if (!j->gone && pool__room(pool, j, 0, 0, 0) > 0) {
                running_t *r = pool__start_task(pool, j, t, true);
                r->lease_ms = lms;
                j->lease_retry_ms = 0; /* maybe there is more */
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%u", list[0] ? "," : "", t);
            } else {
                /* a local task took the slot meanwhile: give it back rather than let the lease expire */
                report_send(pool, j, t, vol_url(pool, j, "release", t, NULL));
            }
        }
        if (list[0])
            pool__note(pool, LOG_LEVEL_INFO, "job %s: leased task %s from %s", j->name, list, j->peers[0]);
    }
    pool_job_unref(j);
    free(v);
    if (!pool->stopping)
        pool__jobs_kick(pool);
    pool__drain_check(pool);
}

/* What the lease requests under way asked for: the slots, memory and disk their tasks will hold. */
static void asking_totals(pool_t *pool, unsigned *asking, uint64_t *asking_mem, uint64_t *asking_disk)
{
    *asking = 0;
    *asking_mem = *asking_disk = 0;
    for (job_t *j = pool->joblist; j; j = j->next)
        if (j->remote && j->lease_pending) {
            *asking += j->lease_asked;
            *asking_mem += (uint64_t)j->lease_asked * j->man.desc.memory_bytes;
            *asking_disk += (uint64_t)j->lease_asked * j->man.desc.disk_bytes;
        }
}

void pool__vol_kick(pool_t *pool)
{
    uint64_t now = pool_now_ms();
    if (!pool->opts.http_url || pool->stopping || now < pool->disk_pause_until_ms ||
        exec_work_failed(pool->exec, NULL))
        return;
    unsigned asking;
    uint64_t asking_mem, asking_disk; /* what the leases asked for will hold */
    asking_totals(pool, &asking, &asking_mem, &asking_disk);
    for (job_t *j = pool->joblist; j; j = j->next) {
        if (pool->nrunning + asking >= pool->opts.slots)
            break;
        if (!j->remote || j->gone || !j->listed || j->n_peers == 0 || j->lease_pending)
            continue;
        if (now < j->lease_retry_ms || !can_run(pool, j))
            continue;
        unsigned n = pool__room(pool, j, asking, asking_mem, asking_disk);
        if (n == 0)
            continue; /* not enough memory or disk left for one of its tasks: maybe a smaller job */
        if (n > VOL_MAX_LEASE)
            n = VOL_MAX_LEASE;
        char extra[32];
        snprintf(extra, sizeof(extra), "&n=%u", n);
        j->lease_pending = true;
        j->lease_asked = n;
        if (vol_get(pool, j, "lease", UINT32_MAX, extra, on_lease) == 0) {
            asking += n;
            asking_mem += (uint64_t)n * j->man.desc.memory_bytes;
            asking_disk += (uint64_t)n * j->man.desc.disk_bytes;
        } else {
            j->lease_pending = false;
            j->lease_asked = 0;
            j->lease_retry_ms = now + VOL_RETRY_MS;
        }
    }
}

/* Volunteer: stops a remote task running here (its job was cancelled): no result is sent. */
static void cancel_running(pool_t *pool, job_t *j, uint32_t task, const char *why)
{
    for (running_t *r = pool->running; r; r = r->next) {
        if (r->remote && r->job == j && r->task == task && r->et) {
            log_info("job %s task %u: %s: stopping it", j->name, task, why);
            exec_task_cancel(r->et);
        }
    }
}

static void on_ack(int status, unsigned code, const char *body, size_t len, void *arg)
{
    vreq_t *v = arg;
    if (!status && code == 410)
        cancel_running(v->pool, v->job, v->task, "the submitter cancelled the job");
    else if (status || code >= 300)
        log_warn("job %s task %u: the submitter answered %u (%s)", v->job->name, v->task, code,
                 status ? strerror(-status) : "HTTP");
    pool_job_unref(v->job);
    free(v);
}

static int release_ckpt_send(pool_t *pool, job_t *j, uint32_t task, const char *id, unsigned tries)
{
    char extra[80];
    snprintf(extra, sizeof(extra), "&ckpt=%s", id);
    pool->reports_pending++;
    vreq_t *v = NULL;
    int rc = vol_send_v(pool, j, task, vol_url(pool, j, "release", task, extra), on_release_ckpt_ack, &v);
    if (rc)
        pool->reports_pending--;
    else
        v->tries = tries;
    return rc;
}

void pool__vol_release(pool_t *pool, job_t *j, uint32_t task, const char *ckpt_id)
{
    if (!j->n_peers)
        return;
    if (ckpt_id)
        release_ckpt_send(pool, j, task, ckpt_id, 0);
    else
        report_send(pool, j, task, vol_url(pool, j, "release", task, NULL));
}

/* A leased task's checkpoint was being fetched (from the submitter): the task starts, from it if it
 * came, else from the beginning; or goes back if a slot is no longer free. */
static void on_lease_ckpt(pool_t *pool, job_t *j, uint32_t task, int status, void *arg)
{
    uint64_t *lms = arg;
    ckpt_pending_add(pool, j, -1);
    if (status && !pool->stopping && !j->gone) {
        log_warn("job %s task %u: it starts from the beginning (its checkpoint did not come)", j->name, task);
        pool__ckpt_drop(pool, j, task); /* an older one of ours is not the one the lease named */
    }
    if (!pool->stopping && !j->gone && pool__room(pool, j, 0, 0, 0) > 0) {
        running_t *r = pool__start_task(pool, j, task, true);
        r->lease_ms = *lms;
        r->last_renew_ms = 0; /* renewed at once: the submitter's long lease for the fetch is shortened */
    } else if (!pool->stopping && !j->gone) {
        report_send(pool, j, task, vol_url(pool, j, "release", task, NULL));
    }
    free(lms);
    pool_job_unref(j);
    if (!pool->stopping)
        pool__jobs_kick(pool);
    pool__drain_check(pool);
}

/*
 * Why this peer does not ask j's submitter for a task now, as it tells the submitter (d), or false
 * if it would ask (it can run one). asking...: what the lease requests under way will hold.
 */
static bool vol_declines(pool_t *pool, job_t *j, unsigned asking, uint64_t asking_mem, uint64_t asking_disk,
                         decline_t *d)
{
    char why[512];
    *d = (decline_t){0};
    if (pool->stopping || pool->draining) {
        d->code = DECLINE_STOPPING;
        return true;
    }
    if (!pool__job_fits(pool, j, why, sizeof(why), d))
        return d->code != 0;
    if (pool->idle_v != IDLE_RUN) {
        d->code = DECLINE_IDLE;
        return true;
    }
    unsigned used = pool->nrunning + pool->ckpt_pending + asking, of = pool->opts.slots;
    if (of == 0) {
        d->code = DECLINE_NO_SLOTS;
        return true;
    }
    if (used >= of) { /* all taken (what is asked for counts as taken): said as "of of of" */
        of = of < DECLINE_MAX_SLOTS ? of : DECLINE_MAX_SLOTS;
        *d = (decline_t){.code = DECLINE_SLOTS, .used = of, .of = of};
        return true;
    }
    if (pool__room(pool, j, asking, asking_mem, asking_disk) > 0)
        return false;
    uint64_t mem_used = pool->mem_used + pool->ckpt_pending_mem + asking_mem;
    uint64_t mem_left = mem_used < pool->opts.memory_total ? pool->opts.memory_total - mem_used : 0;
    uint64_t disk_used = pool->disk_used + pool->ckpt_pending_disk + asking_disk;
    uint64_t disk_left = disk_used < pool->opts.disk_total ? pool->opts.disk_total - disk_used : 0;
    if (pool->opts.memory_total && j->man.desc.memory_bytes > mem_left)
        *d = (decline_t){.code = DECLINE_MEMORY_FREE, .have = mem_left};
    else
        *d = (decline_t){.code = DECLINE_DISK_FREE, .have = disk_left};
    if (d->have > DECLINE_MAX_BYTES)
        d->have = DECLINE_MAX_BYTES;
    return true;
}

static void on_decline_ack(int status, unsigned code, const char *body, size_t len, void *arg)
{
    vreq_t *v = arg;
    v->job->decline_pending = false;
    if (status || code >= 300)
        log_debug("job %s: the submitter answered a decline: %u (%s)", v->job->name, code,
                  status ? strerror(-status) : "HTTP");
    pool_job_unref(v->job);
    free(v);
}

static bool decline_same(const decline_t *a, const decline_t *b)
{
    return a->code == b->code && a->have == b->have && a->used == b->used && a->of == b->of; /* not memcmp: padding */
}

/* The job after j in the job list, wrapping round to its head; NULL once back at start. */
static job_t *next_wrapped(pool_t *pool, job_t *j, const job_t *start)
{
    job_t *n = j->next ? j->next : pool->joblist;
    return n == start ? NULL : n;
}

/*
 * Tells the submitters of jobs whose tasks wait (as their /v1/jobs counts say) why this peer does
 * not ask for them (GET /v1/decline, docs/protocol.md): a new reason at once (at most once a second
 * per job), the same one every VOL_DECLINE_EVERY_MS, so it stays fresh there; at most
 * VOL_MAX_DECLINES_PER_TICK requests a second. A job it can run gets none: it asks for tasks. Each
 * job is looked at once a second at most (pool__job_fits asks the system for the memory and the
 * disk), VOL_MAX_DECLINE_CHECKS_PER_TICK of them a tick: the walk goes round the job list from where
 * the last tick stopped (pool->decline_next), so past that many jobs each still has its turn.
 */
static void vol_declines_tick(pool_t *pool)
{
    if (!pool->opts.http_url || !pool->fetch)
        return;
    uint64_t now = pool_now_ms();
    unsigned asking, sent = 0, checked = 0;
    uint64_t asking_mem, asking_disk;
    asking_totals(pool, &asking, &asking_mem, &asking_disk);
    job_t *start = pool->joblist; /* where the last tick stopped, by id (that job may have gone since) */
    for (job_t *j = pool->joblist; j && pool->decline_next[0]; j = j->next)
        if (!strcmp(j->id, pool->decline_next)) {
            start = j;
            break;
        }
    pool->decline_next[0] = '\0';
    for (job_t *j = start; j; j = next_wrapped(pool, j, start)) {
        if (sent >= VOL_MAX_DECLINES_PER_TICK || checked >= VOL_MAX_DECLINE_CHECKS_PER_TICK) {
            snprintf(pool->decline_next, sizeof(pool->decline_next), "%s", j->id); /* the next tick starts here */
            break;
        }
        if (j->remote && (j->r_state != POOL_JOB_RUNNING || j->rcounts.waiting == 0))
            j->decline_sent.code = 0; /* nothing waits: when tasks wait again, the reason goes at once */
        if (!j->remote || j->gone || !j->listed || j->n_peers == 0 || j->lease_pending || j->decline_pending ||
            j->r_state != POOL_JOB_RUNNING || j->rcounts.waiting == 0 ||
            now - j->decline_checked_ms < VOL_DECLINE_MIN_MS / 2) /* once a tick, whatever its jitter */
            continue;
        j->decline_checked_ms = now;
        checked++;
        decline_t d;
        char q[96];
        if (!vol_declines(pool, j, asking, asking_mem, asking_disk, &d) ||
            wire_decline_encode(&d, q, sizeof(q)) < 0) { /* not DECLINE_OTHER: the submitter needs no "other" */
            j->decline_sent.code = 0;
            continue;
        }
        bool same = decline_same(&d, &j->decline_sent);
        if (now - j->decline_sent_ms < (same ? VOL_DECLINE_EVERY_MS : VOL_DECLINE_MIN_MS))
            continue;
        j->decline_sent = d; /* even if it cannot be sent now: tried again in VOL_DECLINE_EVERY_MS, not every tick */
        j->decline_sent_ms = now;
        if (vol_send(pool, j, UINT32_MAX, vol_url(pool, j, "decline", UINT32_MAX, q), on_decline_ack) != 0)
            continue;
        j->decline_pending = true;
        sent++;
    }
}

/* Renews the leases of remote tasks running here; called every second. */
static void vol_tick(pool_t *pool)
{
    uint64_t now = pool_now_ms();
    for (running_t *r = pool->running; r; r = r->next) {
        if (!r->remote || now - r->last_renew_ms < r->lease_ms / 3)
            continue;
        r->last_renew_ms = now;
        vol_get(pool, r->job, "renew", r->task, NULL, on_ack);
    }
    /* this peer's own jobs too: one that waits for room on the disk (pool__job_fits) starts once
     * there is room, with no other event to start it */
    if (!pool->stopping)
        pool__jobs_kick(pool);
    vol_declines_tick(pool);
    if (!pool->stopping)
        outbox_tick(pool);
}

typedef struct outwork {
    uv_work_t req;
    pool_t *pool;
    job_t *job;
    uint32_t task;
    int exit_code;
    uint64_t elapsed_ms;
    char *dir;
    manifest_t man;
    char *data; /* the files' contents in manifest order, if small enough to go inline */
    size_t data_len;
    int rc;
    char why[256];
} outwork_t;

/* Thread pool: reads a small result's files (bundle_fits) into one buffer, in manifest order. */
static char *read_small_result(const char *dir, const manifest_t *m, size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < m->n_files; i++)
        total += (size_t)m->files[i].size;
    char *buf = xmalloc(total + 1);
    size_t off = 0;
    for (size_t i = 0; i < m->n_files; i++) {
        char *p = xasprintf("%s/%s", dir, m->files[i].path);
        int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        free(p);
        /* one byte more than expected is asked for, so a file that grew is noticed */
        ssize_t got = fd < 0 ? -1 : read(fd, buf + off, (size_t)m->files[i].size + 1);
        if (fd >= 0)
            close(fd);
        if (got != (ssize_t)m->files[i].size) {
            free(buf);
            return NULL; /* sent the usual way: the submitter fetches the blocks */
        }
        off += (size_t)got;
    }
    *len = off;
    return buf;
}

static void out_work(uv_work_t *req)
{
    outwork_t *w = req->data;
    w->rc = pool__hash_tree(w->pool->store, w->dir, &w->man, w->why, sizeof(w->why));
    for (size_t i = 0; !w->rc && i < w->man.n_files; i++) /* no umask of this host in the result's id */
        w->man.files[i].mode = w->man.files[i].mode & 0111 ? 0755 : 0644;
    if (!w->rc && bundle_fits(&w->man))
        w->data = read_small_result(w->dir, &w->man, &w->data_len);
}

static void out_done(uv_work_t *req, int status)
{
    outwork_t *w = req->data;
    pool_t *pool = w->pool;
    job_t *j = w->job;
    pool->pending_work--;
    char *bytes = NULL;
    size_t len = 0;
    if (!w->rc && !j->gone && manifest_encode(&w->man, &bytes, &len) == 0) {
        struct outbox *o = xcalloc(1, sizeof(*o));
        memcpy(o->id, j->id, sizeof(o->id));
        o->task = w->task;
        o->bytes = bytes;
        o->len = len;
        char head[320], *inl = NULL, *extra;
        wire_done_t d = {.exit_code = w->exit_code < -1 || w->exit_code > 255 ? -1 : w->exit_code,
                         .elapsed_ms = w->elapsed_ms > WIRE_MAX_ELAPSED_MS ? WIRE_MAX_ELAPSED_MS : w->elapsed_ms};
        /* The result's id and this peer's signature of it: what replicas compare, and who vouches. */
        hash_t rid;
        manifest_id(bytes, len, &rid);
        hash_to_hex(&rid, d.rid);
        auth_result_sign(pool->key, j->id, w->task, d.rid, d.exit_code, d.rsig);
        if (wire_done_encode(&d, head, sizeof(head)) < 0)
            head[0] = '\0';
        /* A replicated task's result goes only if the submitter asks: the replicas that agree with
         * one it already has send nothing but their signed id. */
        if (w->data && j->man.desc.replicas == 1 && bundle_query(bytes, len, w->data, w->data_len, &inl) == 0) {
            extra = xasprintf("%s%s", head, inl);
            free(inl);
        } else {
            extra = xstrdup(head);
        }
        char *url = vol_url(pool, j, "done", w->task, extra);
        bool inline_ok = strlen(url) <= FETCH_MAX_GET_URL && strcmp(extra, head) != 0;
        free(url);
        o->query = inline_ok ? extra : xstrdup(head); /* a bundle the URL cannot carry is not kept */
        if (!inline_ok)
            free(extra);
        o->head_len = strlen(head);
        o->created_ms = (int64_t)pool_now_ms();
        db_post_outbox_put(pool->db,
                           &(db_outbox_t){.job_id = o->id, .task = o->task, .manifest = o->bytes,
                                          .manifest_len = o->len, .report = o->query, .head_len = o->head_len,
                                          .created_ms = o->created_ms},
                           NULL, NULL);
        if (pool->stopping) { /* kept on disk only: reported after the next start */
            outbox_free(o);
            log_info("job %s task %u done here while stopping: its result is kept and reported after the next start",
                     j->name, w->task);
        } else {
            o->next = pool->outbox;
            pool->outbox = o;
            outbox_send(pool, j, o);
        }
        if (!pool->stopping)
            pool__note(pool, LOG_LEVEL_INFO, "job %s task %u done here (exit %d): reported to %s%s", j->name, w->task,
                       w->exit_code, j->peers[0], inline_ok ? " with the result inline" : "");
    } else if (w->rc) {
        log_error("job %s task %u: hashing the outputs: %s", j->name, w->task, w->why);
    }
    manifest_release(&w->man);
    free(w->data);
    free(w->dir);
    free(w);
    pool_job_unref(j);
    pool->reports_pending--;
    pool__drain_check(pool);
}

void pool__vol_task_done(pool_t *pool, job_t *j, uint32_t task, int exit_code, uint64_t elapsed_ms, const char *reason)
{
    outwork_t *w = xcalloc(1, sizeof(*w));
    w->req.data = w;
    w->pool = pool;
    w->job = j;
    w->task = task;
    w->exit_code = exit_code;
    w->elapsed_ms = elapsed_ms;
    w->dir = xasprintf("%s/results/%s/%u", pool->data_dir, j->id, task);
    manifest_init(&w->man);
    /* the submitter's name for it, not ours (a clash renames it here): replicas compare by this id */
    w->man.name = xasprintf("%s.%u", j->man.name[0] == '.' ? "result" : j->man.name, task);
    w->man.created_ms = j->man.created_ms; /* the same on every replica: results compare by their id */
    pool_job_ref(j);
    pool->pending_work++;
    pool->reports_pending++; /* a drain waits for the report, hashing included (out_done) */
    uv_queue_work(pool->loop, &w->req, out_work, out_done);
    (void)reason; /* stderr and exit_code travel as files of the result */
}

/* (the submitter side's handling of results is below, after the request helpers) */

/*
 * The volunteer's base URL: the address its request came from, with the port it names in ?peer=
 * (its URL may say 0.0.0.0, and a volunteer must not point the submitter at a third party).
 */
static const char *query_peer(httpd_req_t *r, char *out, size_t cap)
{
    size_t qlen = 0, olen = 0;
    char given[VOL_MAX_URL];
    const char *q = httpd_req_query(r, &qlen);
    if (httpd_query_get(q, qlen, "peer", given, sizeof(given) - 1, &olen) != 0 || olen == 0 ||
        strncmp(given, "http://", 7) != 0)
        return NULL;
    given[olen] = '\0';
    const char *colon = strrchr(given + 7, ':');
    char *end = NULL;
    unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
    const struct sockaddr *sa = httpd_req_peer(r);
    char ip[INET_ADDRSTRLEN];
    if (!colon || port == 0 || port > 65535 || (end && *end) || !sa || sa->sa_family != AF_INET ||
        !inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip)))
        return NULL;
    snprintf(out, cap, "http://%s:%lu", ip, port);
    return out;
}

/* The host part of a peer's base URL (what the per-host caps count). */
static const char *peer_host(const char *url, char *out, size_t cap)
{
    const char *h = strncmp(url, "http://", 7) == 0 ? url + 7 : url;
    size_t n = strcspn(h, ":/");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), h);
    return out;
}

static void reply_json(httpd_req_t *r, unsigned code, const char *text)
{
    httpd_reply(r, code, "application/json", text, strlen(text));
}

/* An unsigned query parameter capped at max, or def if absent or not a number. */
static unsigned long long query_num(httpd_req_t *r, const char *key, unsigned long long def, unsigned long long max)
{
    size_t qlen = 0, vlen = 0;
    const char *q = httpd_req_query(r, &qlen);
    char v[32], *end = NULL;
    if (httpd_query_get(q, qlen, key, v, sizeof(v) - 1, &vlen) != 0 || vlen == 0)
        return def;
    v[vlen] = '\0';
    unsigned long long n = strtoull(v, &end, 10);
    return *end || v[0] == '-' ? def : n > max ? max : n;
}

/* Where the worker (a key, hex: the core's worker id) was last heard from, or NULL. */
static const char *worker_url(pool_t *pool, const char *worker)
{
    key_pub_t k;
    return key_pub_from_hex(worker, strlen(worker), &k) == 0 ? pool__bound_url(pool, &k) : NULL;
}

/* ---- recruiting: offers and greetings ---- */

static void on_offer_ack(int status, unsigned code, const char *body, size_t len, void *arg)
{
    char *url = arg;
    if (status || code >= 300)
        log_debug("GET %s: %s %u", url, status ? strerror(-status) : "HTTP", code);
    free(url);
}

/* A signed fire-and-forget GET of target to peer (logged at debug level if it fails). */
static void send_signed(pool_t *pool, const char *peer, char *target)
{
    char *url = xasprintf("%s%s", peer, target);
    int rc = pool__sget(pool, peer, target, 4096, on_offer_ack, url);
    if (rc) { /* -EAGAIN: FETCH_MAX_GETS under way; that peer learns of it by polling */
        log_debug("GET %s: %s", url, strerror(-rc));
        free(url);
    }
    free(target);
}

/* GET peer/v1/offer/<id>?sig= (or /v1/hello if j is NULL), signed, fire-and-forget. */
static void send_offer(pool_t *pool, const char *peer, const job_t *j)
{
    send_signed(pool, peer, j ? xasprintf("/v1/offer/%s?peer=%s&sig=%s", j->id, pool->opts.http_url, j->sig)
                              : xasprintf("/v1/hello?peer=%s", pool->opts.http_url));
}

static bool offerable(pool_t *pool, job_t *j)
{
    coord_counts_t c;
    return j->published && !j->remote && !j->gone && j->state == POOL_JOB_RUNNING &&
           coord_counts(pool->coord, j->id, &c) == 0 && c.waiting > 0;
}

void pool__vol_offer(pool_t *pool, job_t *j, const char *peer)
{
    if (!pool->opts.http_url || pool->stopping || !pool->fetch || !offerable(pool, j))
        return;
    if (peer)
        return send_offer(pool, peer, j);
    for (size_t i = 0; i < pool->n_pool_peers; i++)
        send_offer(pool, pool->pool_peers[i], j);
}

void pool__vol_new_peer(pool_t *pool, const char *url)
{
    if (!pool->opts.http_url || pool->stopping || !pool->fetch)
        return;
    bool offered = false;
    for (job_t *j = pool->joblist; j; j = j->next) {
        if (offerable(pool, j)) {
            send_offer(pool, url, j);
            offered = true;
        }
    }
    if (!offered) /* an offer says who we are too */
        send_offer(pool, url, NULL);
}

/* /v1/hello?peer= and /v1/offer/<id>?peer=&sig=: the sender (caller: its key) is a pool peer; an
 * offered job is fetched (if new: its signature is checked, and caller must be the key that signed
 * it) and asked for work at once. An offer of a known job from another key changes nothing. */
static void handle_offer(pool_t *pool, httpd_req_t *r, const char *id, const key_pub_t *caller)
{
    char peer[VOL_MAX_URL];
    if (!query_peer(r, peer, sizeof(peer)))
        return reply_json(r, 400, "{\"error\":\"peer=http://... is required\"}");
    pool__bind_peer_key(pool, peer, caller); /* this key speaks from there */
    bool added = pool__add_peer(pool, peer); /* at most POOL_MAX_PEERS_PER_HOST on its host */
    size_t hq = 0, bl = 0;
    char back[4];
    const char *hqs = httpd_req_query(r, &hq);
    /* A greeting from a peer we knew: it may have restarted and forgotten who we are (which key
     * speaks from our address), so we greet it back, once (back=1 is not answered). */
    if (!id && !added && pool->opts.http_url && httpd_query_get(hqs, hq, "back", back, sizeof(back) - 1, &bl) != 0)
        send_signed(pool, peer, xasprintf("/v1/hello?peer=%s&back=1", pool->opts.http_url));
    if (id) {
        job_t *j = pool_job_by_id(pool, id);
        char sig[KEY_SIG_HEX_LEN + 2] = "";
        size_t qlen = 0, slen = 0;
        const char *q = httpd_req_query(r, &qlen);
        if (httpd_query_get(q, qlen, "sig", sig, sizeof(sig) - 1, &slen) != 0)
            slen = 0;
        sig[slen] = '\0';
        if (!j) {
            pool__get_manifest(pool, peer, id, true, sig, caller);
        } else if (j->remote && !j->gone && (!j->signed_job || !key_pub_equal(caller, &j->submitter))) {
            char who[KEY_PUB_HEX_LEN + 1];
            key_pub_to_hex(caller, who);
            log_warn("job %s: an offer from %s (key %.16s...), which did not sign it: ignored", j->name, peer, who);
            return reply_json(r, 403, "{\"error\":\"only the job's submitter offers it\"}");
        } else if (j->remote && !j->gone) {
            pool__job_add_peer(j, peer, true);
            j->lease_retry_ms = 0; /* it says tasks wait: ask now even if it said "none" a moment ago */
            pool__vol_kick(pool);
        }
    }
    reply_json(r, 200, "{}");
}

/* ---- the requests ---- */

/* The submitter's answer to a lease request: up to ?n= tasks (at most VOL_MAX_LEASE) under one lease each. */
static void handle_lease(pool_t *pool, httpd_req_t *r, job_t *j, const char *peer, const char *worker)
{
    unsigned n = (unsigned)query_num(r, "n", 1, VOL_MAX_LEASE);
    uint32_t got[VOL_MAX_LEASE];
    decline_forget(j->declines, peer); /* it asks: it no longer declines */
    unsigned k = 0;
    uint64_t now = pool_now_ms();
    char host[VOL_MAX_URL];
    int rc = coord_worker_seen(pool->coord, worker, peer_host(peer, host, sizeof(host)), now);
    if (rc) {
        log_warn("job %s: no lease for %s: %s", j->name, peer,
                 rc == -EMFILE ? "its host runs too many volunteers" : "the pool is full");
        return reply_json(r, 429, "{\"error\":\"too many volunteers\"}");
    }
    /* A write to the data directory failed a moment ago (a full disk): the results of tasks handed
     * out now could not be kept either; none for POOL_DISK_PAUSE_MS (the volunteer asks again). */
    while (j->state == POOL_JOB_RUNNING && k < (n ? n : 1) && now >= pool->disk_pause_until_ms &&
           coord_lease(pool->coord, j->id, worker, now, lease_ms(pool), NULL, &got[k]) == 0)
        pool__task_dispatched(j, got[k++]);
    if (k == 0)
        return reply_json(r, 204, "");
    wire_lease_t l = {.n = k, .lease_ms = lease_ms(pool)};
    memcpy(l.tasks, got, k * sizeof(got[0]));
    for (unsigned i = 0; i < k; i++) { /* a task given back with a checkpoint starts from it (ckpt.c) */
        const char *ck = pool__ckpt_id(pool, j, got[i]);
        if (!ck)
            continue;
        memcpy(l.ckpt[i], ck, HASH_HEX_LEN + 1);
        coord_renew(pool->coord, j->id, got[i], worker, now, POOL_CKPT_LEASE_MS); /* time for the fetch */
    }
    char body[WIRE_MAX_BODY];
    if (wire_lease_encode(&l, body, sizeof(body)) < 0) /* cannot happen: k <= VOL_MAX_LEASE */
        return reply_json(r, 500, "{\"error\":\"internal\"}");
    pool__note(pool, LOG_LEVEL_INFO, "job %s: task %.*s leased to %s", j->name, (int)(strchr(body, ']') - body - 10),
               body + 10, peer);
    reply_json(r, 200, body);
}

/* /v1/decline/<job>?peer=&why=...: a pool peer says why it does not ask for j's tasks (wire.h). It
 * speaks for itself only: its reason replaces its peer's last one, kept with its key, which must
 * still be the one bound to that peer to count (pool/decline.h). Kept only while j runs (the table
 * goes when it is over: job_check_over, pool_job_cancel) and only from a pool peer, the only ones
 * the summary counts: so a host holds at most POOL_MAX_PEERS_PER_HOST entries a job, however many
 * keys it makes. */
static void handle_decline(pool_t *pool, httpd_req_t *r, job_t *j, const char *peer, const char *worker)
{
    size_t qlen = 0;
    const char *q = httpd_req_query(r, &qlen);
    decline_t d;
    char why[128], body[192];
    if (wire_decline_decode(q, qlen, &d, why, sizeof(why)) != 0) {
        snprintf(body, sizeof(body), "{\"error\":\"%s\"}", why); /* our own text */
        return reply_json(r, 400, body);
    }
    if (j->state != POOL_JOB_RUNNING)
        return reply_json(r, 409, "{\"error\":\"the job is not running: nothing of it waits\"}");
    pool__add_peer(pool, peer); /* as a greeting */
    if (!pool__is_pool_peer(pool, peer))
        return reply_json(r, 409, "{\"error\":\"not a pool peer here (too many on its host): its reason is not "
                                  "counted\"}");
    if (!j->declines)
        j->declines = decline_table_new();
    decline_put(j->declines, peer, worker, &d, pool_now_ms()); /* checked: peer and worker in range, d decoded */
    reply_json(r, 200, "{}");
}

typedef struct url_key {
    const char *url;
    char hex[KEY_PUB_HEX_LEN + 1];
} url_key_t;

static int url_key_cmp(const void *a, const void *b)
{
    return strcmp(((const url_key_t *)a)->url, ((const url_key_t *)b)->url);
}

/* The status's summary of what j's pool peers said (pool->up.vol_why_peers): each pool peer by the
 * key a signed request of its bound to its URL (trust.c), so a peer only ever speaks for itself. */
char *pool__vol_why_peers(pool_t *pool, job_t *j, char *buf, size_t cap)
{
    size_t n = pool->n_pool_peers, nb = pool->n_bound;
    url_key_t *bound = xreallocarray(NULL, nb ? nb : 1, sizeof(*bound));
    decline_peer_t *ids = xreallocarray(NULL, n ? n : 1, sizeof(*ids));
    for (size_t i = 0; i < nb; i++) {
        bound[i].url = pool->bound[i].url;
        key_pub_to_hex(&pool->bound[i].key, bound[i].hex);
    }
    qsort(bound, nb, sizeof(*bound), url_key_cmp);
    for (size_t i = 0; i < n; i++) {
        url_key_t want = {.url = pool->pool_peers[i]};
        const url_key_t *k = nb ? bsearch(&want, bound, nb, sizeof(*bound), url_key_cmp) : NULL;
        ids[i] = (decline_peer_t){.url = pool->pool_peers[i], .worker = k ? k->hex : NULL};
    }
    decline_groups_t g;
    decline_group(j->declines, ids, n, pool_now_ms(), &g);
    decline_need_t need = {.memory = j->man.desc.memory_bytes, .disk = j->man.desc.disk_bytes,
                           .os = j->man.desc.os, .arch = j->man.desc.arch};
    decline_render(&g, &need, buf, cap);
    free(ids);
    free(bound);
    return buf;
}

/* A task goes back to waiting because of its volunteer (a refused result): it may go to another peer. */
static void task_lost(pool_t *pool, job_t *j, uint32_t task, const char *worker)
{
    coord_lost(pool->coord, j->id, task, worker);
    pool__job_check_over(j);
    pool__jobs_kick(pool);
    pool__vol_offer(pool, j, NULL);
}

/* ---- submitter side ---- */

/*
 * Results are judged by the coordination core: each report names its result by the id of its
 * result manifest (rid), signed by the worker. Reports that name the same rid share one candidate:
 * its files are fetched (or taken inline) once, from the first worker that reported it, written
 * into the candidate's staging directory results/<id>/.<task>.<n>.tmp and checked against the
 * rid; the reports (votes) wait on it until it is in, then go to the core in order. A vote the
 * core would accept first renames the candidate into results/<job>/<task> (one rename per task at
 * a time), and only then is the task decided, so an accepted task always has its result in
 * place; the other candidates of a decided task are removed. So a replica that agrees with a
 * result already here sends no bytes, and a lying replica's bytes never reach results/.
 */
typedef struct vote {
    char *worker; /* its key (hex): who holds the lease, for the core */
    char *peer;   /* its base URL: where its result is fetched from */
    int exit_code;
    uint64_t elapsed_ms;
    struct vote *next;
} vote_t;

struct cand {
    job_t *job;
    uint32_t task;
    char rid[HASH_HEX_LEN + 1];
    char *stage;
    bool ready;    /* the files are in stage, checked */
    bool dropped;  /* out of the list, freed once no work on it is under way */
    int busy;      /* fetches and renames of its files under way (each holds it) */
    vote_t *votes; /* waiting to be counted, oldest first; the first is the one fetched from */
    struct cand *next;
};

typedef struct rcollect {
    pool_t *pool;
    job_t *job;
    cand_t *cand;
    char *peer; /* the volunteer fetched from */
    manifest_t man;
    char *data; /* an inline result: the files' contents, already checked against man */
    char result_id[HASH_HEX_LEN + 1]; /* the id of the manifest received */
    unsigned missing;
    int status;
    uv_work_t req;
    char why[256];
    char *mbody; /* the result manifest as fetched, decoded in the thread pool */
    size_t mlen;
} rcollect_t;

static void task_lost(pool_t *pool, job_t *j, uint32_t task, const char *worker);
static void collect_start(pool_t *pool, cand_t *k, char *inline_data, manifest_t *inline_man);
static void cand_run(cand_t *k);

static void vote_free(vote_t *v)
{
    free(v->worker);
    free(v->peer);
    free(v);
}

static cand_t *cand_find(pool_t *pool, const job_t *j, uint32_t task, const char *rid)
{
    for (cand_t *k = pool->cands; k; k = k->next)
        if (k->job == j && k->task == task && !strcmp(k->rid, rid))
            return k;
    return NULL;
}

/* The votes not counted: the task is decided (coord_lost is then -EPERM: nothing), or they run again. */
static void cand_drop_votes(cand_t *k)
{
    pool_t *pool = k->job->pool;
    while (k->votes) {
        vote_t *v = k->votes;
        k->votes = v->next;
        if (!k->job->gone && !pool->stopping)
            coord_lost(pool->coord, k->job->id, k->task, v->worker);
        vote_free(v);
    }
}

static void cand_free_now(cand_t *k)
{
    cand_drop_votes(k);
    if (k->stage)
        pool__rm_later(k->job->pool, k->stage, NULL);
    pool_job_unref(k->job);
    free(k);
}

/*
 * The candidate leaves the list (no vote joins it any more) and goes: at once, or, while a fetch or
 * a rename of its files is under way (busy), when that ends (cand_idle). Its votes go at once.
 */
static void cand_unlink_free(cand_t *k)
{
    pool_t *pool = k->job->pool;
    for (cand_t **pp = &pool->cands; *pp; pp = &(*pp)->next) {
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    }
    k->next = NULL;
    if (!k->busy)
        return cand_free_now(k);
    k->dropped = true;
    cand_drop_votes(k);
}

/* A fetch or rename of k's files ended: k goes now if it was dropped meanwhile. */
static void cand_idle(cand_t *k)
{
    if (--k->busy == 0 && k->dropped)
        cand_free_now(k);
}

/* Every candidate of the task (all, if task is UINT32_MAX) of j goes, with its files. */
static void cands_drop(pool_t *pool, const job_t *j, uint32_t task)
{
    for (cand_t *k = pool->cands, *next; k; k = next) {
        next = k->next;
        if (k->job == j && (task == UINT32_MAX || k->task == task))
            cand_unlink_free(k);
    }
}

/* Candidates of jobs that went, and of tasks decided while they waited (lease timer). */
static void cands_sweep(pool_t *pool)
{
    for (cand_t *k = pool->cands, *next; k; k = next) {
        next = k->next;
        task_state_t st = TASK_WAITING;
        if (k->job->gone || (coord_task(pool->coord, k->job->id, k->task, &st, NULL) == 0 && st != TASK_WAITING &&
                             st != TASK_RUNNING && !(k->job->publishing && k->job->publishing[k->task])))
            cand_unlink_free(k);
    }
}

static void rc_free(rcollect_t *c)
{
    cand_t *k = c->cand;
    free(c->mbody);
    manifest_release(&c->man);
    free(c->data);
    free(c->peer);
    pool_job_unref(c->job);
    free(c);
    cand_idle(k);
}

/*
 * Thread pool: writes the result files (from the report, or from the store) into the candidate's
 * staging directory, and computes the id of the manifest received (it must be the rid voted for).
 */
static void assemble_work(uv_work_t *req)
{
    rcollect_t *c = req->data;
    pool_t *pool = c->pool;
    const char *tmp = c->cand->stage;
    char *enc = NULL;
    size_t enclen = 0;
    if (manifest_encode(&c->man, &enc, &enclen) == 0) {
        hash_t id;
        manifest_id(enc, enclen, &id);
        hash_to_hex(&id, c->result_id);
    } else {
        snprintf(c->result_id, sizeof(c->result_id), "unencodable");
    }
    free(enc);
    if (strcmp(c->result_id, c->cand->rid) != 0) {
        snprintf(c->why, sizeof(c->why), "its result is not the one it signed (id %.16s..., signed %.16s...)",
                 c->result_id, c->cand->rid);
        c->status = -EBADMSG;
        return;
    }
    char why[200];
    int rc = pool__files_write(pool->store, &c->man, c->data, tmp, false, why, sizeof(why));
    if (rc)
        snprintf(c->why, sizeof(c->why), "writing the result: %s", strerror(-rc));
    c->status = rc;
}

/*
 * The candidate's files could not be had from the worker it was fetched from (or were not what it
 * signed): that worker's lease is lost (the task runs again elsewhere), and the next vote for the
 * same result, if any, is fetched from instead. err -ENOSPC or -EDQUOT: this peer could not write
 * them (its disk is full): no worker is at fault, every vote's lease is released (no attempt
 * counted) and the volunteers, which keep their results until they are listed here, report them
 * again later (docs/reliability.md).
 */
static void cand_fetch_failed(cand_t *k, const char *why, int err)
{
    job_t *j = k->job;
    pool_t *pool = j->pool;
    if ((err == -ENOSPC || err == -EDQUOT) && !j->gone && !pool->stopping) {
        pool__disk_error(pool, j, err, "job %s task %u: the result of %s could not be kept here: %s (its worker "
                         "reports it again)", j->name, k->task, k->votes ? k->votes->peer : "a volunteer", why);
        while (k->votes) {
            vote_t *v = k->votes;
            k->votes = v->next;
            coord_release(pool->coord, j->id, k->task, v->worker);
            vote_free(v);
        }
        pool__vol_offer(pool, j, NULL);
        return cand_unlink_free(k);
    }
    vote_t *v = k->votes;
    if (v) {
        k->votes = v->next;
        if (!j->gone && !pool->stopping) {
            log_warn("job %s task %u: the result of %s is refused: %s (the task waits for another run)", j->name,
                     k->task, v->peer, why);
            task_lost(pool, j, k->task, v->worker);
        }
        vote_free(v);
    }
    if (!k->votes || j->gone || pool->stopping)
        return cand_unlink_free(k);
    collect_start(pool, k, NULL, NULL);
}

static void assemble_done(uv_work_t *req, int status)
{
    rcollect_t *c = req->data;
    pool_t *pool = c->pool;
    cand_t *k = c->cand;
    pool->pending_work--;
    if (k->dropped)
        ; /* the task was decided meanwhile: nothing to do with these files */
    else if (c->status || status)
        cand_fetch_failed(k, c->why[0] ? c->why : "cancelled", c->status);
    else if (c->job->gone || pool->stopping)
        cand_unlink_free(k);
    else {
        for (size_t i = 0; i < c->man.n_files; i++) /* fetched, or inline in the report */
            c->job->bytes_fetched += c->man.files[i].size;
        k->ready = true;
        cand_run(k);
    }
    rc_free(c);
}

static void rc_block_done(const hash_t *h, int status, void *arg)
{
    rcollect_t *c = arg;
    if (status && !c->status) {
        c->status = status;
        snprintf(c->why, sizeof(c->why), "fetching the result from %s: %s", c->peer, strerror(-status));
    }
    if (--c->missing > 0)
        return;
    if (c->status || c->job->gone || c->pool->stopping || c->cand->dropped) {
        if (!c->cand->dropped)
            cand_fetch_failed(c->cand, c->why, c->status);
        return rc_free(c);
    }
    c->req.data = c;
    c->pool->pending_work++;
    uv_queue_work(c->pool->loop, &c->req, assemble_work, assemble_done);
}

/* Thread pool: the result manifest decoded (every limit checked) and held against the job's rules
 * (pool__result_fits), before one block of it is fetched. */
static void rm_decode_work(uv_work_t *w)
{
    rcollect_t *c = w->data;
    c->why[0] = '\0';
    hash_t want, got;
    hash_from_hex(c->cand->rid, HASH_HEX_LEN, &want); /* set once, before the work: safe to read here */
    manifest_id(c->mbody, c->mlen, &got);
    if (!hash_equal(&want, &got)) { /* not the result it signed: not one block of it is fetched */
        snprintf(c->why, sizeof(c->why), "its result manifest is not the one it signed (%.16s...)", c->cand->rid);
        return;
    }
    if (manifest_decode(&c->man, c->mbody, c->mlen, c->why, sizeof(c->why)) != 0) {
        if (!c->why[0])
            snprintf(c->why, sizeof(c->why), "undecodable");
        return;
    }
    pool__result_fits(&c->man, &c->job->man.desc, c->why, sizeof(c->why)); /* the desc never changes */
}

static void rm_refused(rcollect_t *c, const char *why)
{
    if (!c->cand->dropped)
        cand_fetch_failed(c->cand, why, 0);
    rc_free(c);
}

static void rm_decode_done(uv_work_t *w, int status)
{
    rcollect_t *c = w->data;
    c->pool->pending_work--;
    free(c->mbody);
    c->mbody = NULL;
    if (c->why[0])
        return rm_refused(c, c->why);
    if (c->job->gone || c->pool->stopping || c->cand->dropped)
        return rm_refused(c, "the job went");
    c->missing = 1;
    if (pool__fetch_blocks(c->pool, &c->man, c->peer, rc_block_done, c, &c->missing))
        c->status = -EIO;
    rc_block_done(NULL, 0, c);
}

static void on_result_manifest(int status, unsigned code, const char *body, size_t len, void *arg)
{
    rcollect_t *c = arg;
    if (status || code != 200) {
        char why[128];
        snprintf(why, sizeof(why), "GET result: %s %u", status ? strerror(-status) : "HTTP", code);
        return rm_refused(c, why);
    }
    if (c->job->gone || c->pool->stopping)
        return rm_refused(c, "the job went");
    c->mbody = xmalloc(len ? len : 1); /* the fetcher's buffer is valid during this call only */
    memcpy(c->mbody, body, len);
    c->mlen = len;
    c->req.data = c;
    c->pool->pending_work++;
    uv_queue_work(c->pool->loop, &c->req, rm_decode_work, rm_decode_done);
}

/*
 * Gets the candidate's files from its first vote's worker: inline_data/inline_man (taken) if the
 * report carried them, else its result manifest and then every block, verified, from it.
 */
static void collect_start(pool_t *pool, cand_t *k, char *inline_data, manifest_t *inline_man)
{
    rcollect_t *c = xcalloc(1, sizeof(*c));
    c->pool = pool;
    c->job = k->job;
    c->cand = k;
    c->peer = xstrdup(k->votes->peer);
    manifest_init(&c->man);
    pool_job_ref(c->job);
    k->busy++; /* until rc_free */
    pool->results_fetched++;
    if (inline_man) {
        manifest_release(&c->man); /* (manifest_init allocates: the inline one takes its place) */
        c->man = *inline_man;
        manifest_init(inline_man);
        c->data = inline_data;
        c->req.data = c;
        pool->pending_work++;
        uv_queue_work(pool->loop, &c->req, assemble_work, assemble_done);
        return;
    }
    char target[128];
    snprintf(target, sizeof(target), "/v1/result/%s/%u", k->job->id, k->task);
    if (pool__sget(pool, c->peer, target, FETCH_MAX_GET_BODY, on_result_manifest, c) != 0)
        rm_refused(c, "the fetcher refused the request"); /* signed: only the submitter is served it */
}

typedef struct pubres {
    uv_work_t req;
    cand_t *cand;
    vote_t *vote;
    int status;
    char why[160];
} pubres_t;

/* Thread pool: the accepted candidate's files become results/<job>/<task>. */
static void pubres_work(uv_work_t *req)
{
    pubres_t *p = req->data;
    cand_t *k = p->cand;
    char *fin = xasprintf("%s/results/%s/%u", k->job->pool->data_dir, k->job->id, k->task);
    files_rm_rf(fin);
    if (rename(k->stage, fin) != 0) {
        p->status = -errno;
        snprintf(p->why, sizeof(p->why), "publishing the result: %s", strerror(errno));
    }
    free(fin);
}

/* Says, per task decided with more than one replica, who agreed and who did not. */
static void log_quorum(pool_t *pool, job_t *j, uint32_t task)
{
    if (j->man.desc.replicas < 2)
        return;
    uint32_t n = 0, agree = 0;
    coord_task_votes(pool->coord, j->id, task, &n, &agree, NULL);
    const char *d[COORD_MAX_RUNS];
    size_t nd = coord_dissenters(pool->coord, j->id, task, d, COORD_MAX_RUNS);
    for (size_t i = 0; i < nd && i < COORD_MAX_RUNS; i++)
        pool__note(pool, LOG_LEVEL_WARN, "job %s task %u: worker %.16s... disagreed with the quorum (%u of %u agree)",
                   j->name, task, d[i], agree, n);
}

static void pubres_done(uv_work_t *req, int status)
{
    pubres_t *p = req->data;
    cand_t *k = p->cand;
    job_t *j = k->job;
    pool_t *pool = j->pool;
    vote_t *v = p->vote;
    uint32_t task = k->task;
    pool->pending_work--;
    if (j->publishing)
        j->publishing[task] = 0;
    if (!p->status && !status) {
        free(k->stage);
        k->stage = NULL; /* renamed: results/<job>/<task> now */
    }
    k->ready = false;
    bool accepted = false;
    if (!j->gone && !pool->stopping && !k->dropped) {
        if (p->status || status) { /* the rename failed: not accepted; this vote's task runs again */
            log_warn("job %s task %u: %s (the task waits for another run)", j->name, task, p->why);
            coord_lost(pool->coord, j->id, task, v->worker);
            pool__vol_offer(pool, j, NULL);
            pool__job_check_over(j);
        } else if (pool__task_report(j, task, v->worker, k->rid, v->exit_code == 0)) {
            char reason[320];
            snprintf(reason, sizeof(reason), "exit %d on %s", v->exit_code, v->peer);
            log_info("job %s task %u: result %s from %s (exit %d)", j->name, task, k->rid, v->peer, v->exit_code);
            log_quorum(pool, j, task);
            pool__task_finished(j, task, v->exit_code == 0, v->exit_code, v->elapsed_ms, reason, v->worker);
            accepted = true;
        } else { /* it lost its lease during the rename: the files it put in results/ must not stay */
            pool__rm_later(pool, xasprintf("%s/results/%s/%u", pool->data_dir, j->id, task), NULL);
        }
    }
    vote_free(v);
    free(p);
    if (k->dropped) {
        cand_idle(k);
    } else if (accepted || j->gone || pool->stopping) {
        cands_drop(pool, j, task); /* decided: the task's candidates go, k too */
        cand_idle(k);              /* (j may be gone from here on) */
    } else {
        /* Not decided: k's files are gone (or were never put); its other votes fetch them again
         * from the next of them, and the task's other candidates go on being counted. */
        if (k->votes) {
            free(k->stage);
            k->stage = xasprintf("%s/results/%s/.%u.%" PRIu64 ".tmp", pool->data_dir, j->id, task, ++pool->stage_seq);
            collect_start(pool, k, NULL, NULL);
        } else {
            cand_unlink_free(k);
        }
        for (cand_t *o = pool->cands, *next; o; o = next) {
            next = o->next;
            if (o->job == j && o->task == task && o != k && o->ready)
                cand_run(o);
        }
        cand_idle(k);
    }
}

/* One vote counted: the core's verdict, and what it means here. */
static void vote_count(cand_t *k, vote_t *v)
{
    job_t *j = k->job;
    pool_t *pool = j->pool;
    coord_verdict_t verdict = COORD_LATE;
    bool ok = v->exit_code == 0;
    coord_report(pool->coord, j->id, k->task, v->worker, k->rid, ok, &verdict);
    uint32_t n = 0, agree = 0;
    coord_task_votes(pool->coord, j->id, k->task, &n, &agree, NULL);
    if (verdict == COORD_PENDING) {
        log_info("job %s task %u: result %.16s... from %s: %u of %u reports agree, quorum %u: waiting for more",
                 j->name, k->task, k->rid, v->peer, agree, n, coord_task_quorum(pool->coord, j->id, k->task));
        pool__vol_offer(pool, j, NULL); /* a split wants another replica */
    } else if (verdict == COORD_OUTVOTED) {
        task_state_t st;
        coord_task(pool->coord, j->id, k->task, &st, NULL);
        if (st == TASK_FAILED && !coord_task_result(pool->coord, j->id, k->task)) {
            char reason[200];
            snprintf(reason, sizeof(reason), "no quorum: %u runs, at most %u agree (quorum %u)", n, agree,
                     coord_job_quorum(pool->coord, j->id));
            pool__task_finished(j, k->task, false, -1, v->elapsed_ms, reason, NULL);
        }
    } else {
        log_info("job %s task %u: the report of %s is %s: its result is not kept", j->name, k->task, v->peer,
                 coord_verdict_name(verdict));
    }
}

/*
 * The candidate's files are in: its votes go to the core in order. One the core would accept
 * renames the files into results/ first (pubres), and is counted then.
 */
static void cand_run(cand_t *k)
{
    job_t *j = k->job;
    pool_t *pool = j->pool;
    if (!j->publishing)
        j->publishing = xcalloc(j->man.desc.tasks, 1);
    while (k->ready && k->votes && !j->publishing[k->task]) {
        vote_t *v = k->votes;
        k->votes = v->next;
        coord_verdict_t verdict = COORD_LATE;
        coord_report_preview(pool->coord, j->id, k->task, v->worker, k->rid, v->exit_code == 0, &verdict);
        if (verdict != COORD_ACCEPTED) {
            vote_count(k, v);
            vote_free(v);
            if (verdict == COORD_OUTVOTED)
                return cands_drop(pool, j, k->task); /* k too */
            continue;
        }
        j->publishing[k->task] = 1;
        k->busy++; /* until pubres_done */
        pubres_t *p = xcalloc(1, sizeof(*p));
        p->req.data = p;
        p->cand = k;
        p->vote = v;
        pool->pending_work++;
        uv_queue_work(pool->loop, &p->req, pubres_work, pubres_done);
        return;
    }
}

static void handle_done(pool_t *pool, httpd_req_t *r, job_t *j, uint32_t task, const char *peer, const char *worker)
{
    size_t qlen = 0;
    const char *q = httpd_req_query(r, &qlen);
    wire_done_t d;
    char dwhy[96];
    if (wire_done_decode(q, qlen, &d, dwhy, sizeof(dwhy)) != 0) {
        log_warn("job %s task %u: a bad report from %s: %s", j->name, task, peer, dwhy);
        return reply_json(r, 400, "{\"error\":\"bad exit, ms, rid or rsig\"}");
    }
    key_pub_t wkey;
    if (key_pub_from_hex(worker, strlen(worker), &wkey) != 0 ||
        !auth_result_verify(&wkey, j->id, task, d.rid, d.exit_code, d.rsig)) {
        log_warn("job %s task %u: the report of %s is refused: its result's signature does not verify", j->name,
                 task, peer);
        task_lost(pool, j, task, worker);
        return reply_json(r, 400, "{\"error\":\"the result's signature does not verify\"}");
    }
    manifest_t man;
    manifest_init(&man);
    char *data = NULL, why[256] = "";
    size_t dlen = 0;
    int rc = bundle_parse(q, qlen, &man, &data, &dlen, why, sizeof(why));
    if (rc == 0 && pool__result_fits(&man, &j->man.desc, why, sizeof(why)) != 0)
        rc = -EINVAL;
    if (rc && rc != -ENOENT) {
        log_warn("job %s task %u: the inline result from %s is refused: %s (the task waits for another peer)",
                 j->name, task, peer, why);
        manifest_release(&man);
        free(data);
        task_lost(pool, j, task, worker);
        /* the volunteer is told why (as the log says), in JSON made by jansson (why quotes a path) */
        char *msg = xasprintf("inline result refused: %s", why);
        json_t *o = json_pack("{s:s}", "error", msg);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        reply_json(r, 400, text ? text : "{\"error\":\"inline result refused\"}");
        free(text);
        json_decref(o);
        free(msg);
        return;
    }
    /* give the transfer (or the other replicas) time: the lease holds until the result is judged */
    coord_renew(pool->coord, j->id, task, worker, pool_now_ms(), 10 * lease_ms(pool));
    for (cand_t *o = pool->cands; o; o = o->next) { /* one report per worker and task is judged */
        if (o->job != j || o->task != task)
            continue;
        for (vote_t *w = o->votes; w; w = w->next) {
            if (!strcmp(w->worker, worker)) {
                manifest_release(&man);
                free(data);
                return reply_json(r, 409, "{\"error\":\"a report of this task from you is being judged\"}");
            }
        }
    }
    vote_t *v = xcalloc(1, sizeof(*v));
    v->worker = xstrdup(worker);
    v->peer = xstrdup(peer);
    v->exit_code = d.exit_code;
    v->elapsed_ms = d.elapsed_ms;
    cand_t *k = cand_find(pool, j, task, d.rid);
    if (k) { /* a result already here or on its way: this replica's vote needs no bytes */
        vote_t **pp = &k->votes;
        while (*pp)
            pp = &(*pp)->next;
        *pp = v;
        pool->votes_without_bytes++;
        manifest_release(&man);
        free(data);
        cand_run(k);
        return reply_json(r, 202, "{}");
    }
    k = xcalloc(1, sizeof(*k));
    k->job = j;
    pool_job_ref(j);
    k->task = task;
    memcpy(k->rid, d.rid, sizeof(k->rid));
    k->stage = xasprintf("%s/results/%s/.%u.%" PRIu64 ".tmp", pool->data_dir, j->id, task, ++pool->stage_seq);
    k->votes = v;
    k->next = pool->cands;
    pool->cands = k;
    collect_start(pool, k, rc == 0 ? data : NULL, rc == 0 ? &man : NULL);
    if (rc != 0)
        free(data);
    manifest_release(&man);
    reply_json(r, 202, "{}");
}

/*
 * /v1/hello, /v1/offer/<id> (any peer); /v1/lease/<id>, /v1/renew/<id>/<task>, /v1/release/<id>/<task>,
 * /v1/done/<id>/<task>, POST /v1/output/<id>/<task> (submitter); /v1/result/<id>/<task> (volunteer).
 */
static bool start_ckpt_release(pool_t *pool, job_t *j, uint32_t task, const char *peer, const char *worker,
                               const char *ck, httpd_req_t *r);

/* Whether r, a done report of task, decodes and its result's signature is worker's (handle_done
 * checks both again, and more). */
static bool done_verifies(httpd_req_t *r, const job_t *j, uint32_t task, const char *worker)
{
    size_t qlen = 0;
    const char *q = httpd_req_query(r, &qlen);
    wire_done_t d;
    char why[96];
    key_pub_t wkey;
    return wire_done_decode(q, qlen, &d, why, sizeof(why)) == 0 &&
           key_pub_from_hex(worker, strlen(worker), &wkey) == 0 && auth_result_verify(&wkey, j->id, task, d.rid, d.exit_code, d.rsig);
}

bool pool__vol_handle(pool_t *pool, httpd_req_t *r, const char *path)
{
    char what[8], id[HASH_HEX_LEN + 2], peer[VOL_MAX_URL];
    unsigned task = 0;
    int n = 0;
    bool hello = !strcmp(path, "/hello");
    if (!hello && (sscanf(path, "/%7[a-z]/%65[0-9a-f]%n", what, id, &n) != 2 || strlen(id) != HASH_HEX_LEN))
        return false;
    bool with_task = !hello && path[n] == '/';
    if (with_task && sscanf(path + n, "/%u", &task) != 1)
        return false;
    if (!hello && strcmp(what, "result") && strcmp(what, "offer") && strcmp(what, "cancel") && strcmp(what, "lease") && strcmp(what, "renew") &&
        strcmp(what, "done") && strcmp(what, "release") && strcmp(what, "ckpt") && strcmp(what, "decline") &&
        strcmp(what, "output"))
        return false;
    /* POST is for output only (pool.c lets it through to here), and output only by POST */
    if ((strcmp(httpd_req_method(r), "POST") == 0) != (!hello && !strcmp(what, "output")))
        return reply_json(r, 405, "{\"error\":\"output is sent with POST, the rest with GET\"}"), true;
    /* Everything below changes state here: only a signed request, once (pool/auth.h). */
    key_pub_t caller;
    char why[160], worker[KEY_PUB_HEX_LEN + 1];
    if (pool__auth_check(pool, r, &caller, why, sizeof(why)) != 0) {
        log_info("refused %s %.100s: %s", httpd_req_method(r), httpd_req_path(r), why);
        char body[256];
        snprintf(body, sizeof(body), "{\"error\":\"%s\"}", why);
        return reply_json(r, 401, body), true;
    }
    key_pub_to_hex(&caller, worker);
    if (pool__over_budget(pool, r, pool->key_signed, worker, "key"))
        return true;
    if (!hello && !strcmp(what, "result") && with_task) { /* volunteer: a result manifest, to its submitter */
        job_t *rj = pool_job_by_id(pool, id);
        if (!rj || !rj->remote || !rj->signed_job || !key_pub_equal(&rj->submitter, &caller))
            return reply_json(r, 403, "{\"error\":\"a result goes only to its job's submitter\"}"), true;
        for (struct outbox *o = pool->outbox; o; o = o->next)
            if (!strcmp(o->id, id) && o->task == task)
                return pool->results_served++, httpd_reply(r, 200, "application/json", o->bytes, o->len), true;
        return reply_json(r, 404, "{\"error\":\"no such result\"}"), true;
    }
    if (!hello && !strcmp(what, "ckpt") && with_task)
        return pool__ckpt_handle(pool, r, id, task, &caller), true;
    if (hello)
        return handle_offer(pool, r, NULL, &caller), true;
    if (!strcmp(what, "offer") && !with_task)
        return handle_offer(pool, r, id, &caller), true;
    if (!strcmp(what, "cancel") && with_task) { /* volunteer: the submitter cancelled the job */
        job_t *rj = pool_job_by_id(pool, id);
        if (!rj || !rj->remote || !rj->signed_job || !key_pub_equal(&rj->submitter, &caller)) {
            log_warn("a cancel of job %.16s task %u from key %.16s... that is not its submitter's: ignored", id, task,
                     worker);
            return reply_json(r, 403, "{\"error\":\"only the job's submitter may cancel it\"}"), true;
        }
        cancel_running(pool, rj, task, "the submitter cancelled the job");
        return reply_json(r, 200, "{}"), true;
    }
    if (!strcmp(what, "offer"))
        return false;
    job_t *j = local_job(pool, id);
    if (!j)
        return reply_json(r, 404, "{\"error\":\"no such job here\"}"), true;
    if (!query_peer(r, peer, sizeof(peer)))
        return reply_json(r, 400, "{\"error\":\"peer=http://... is required\"}"), true;
    pool__bind_peer_key(pool, peer, &caller); /* cancels and result fetches of this key go there */
    if (!strcmp(what, "lease"))
        return handle_lease(pool, r, j, peer, worker), true;
    if (!strcmp(what, "decline") && !with_task)
        return handle_decline(pool, r, j, peer, worker), true;
    char ck[HASH_HEX_LEN + 2] = "";
    if (!strcmp(what, "release") && with_task && task < j->man.desc.tasks) {
        size_t qlen = 0, cklen = 0;
        const char *q = httpd_req_query(r, &qlen);
        if (httpd_query_get(q, qlen, "ckpt", ck, sizeof(ck) - 1, &cklen) == 0)
            ck[cklen] = '\0';
        else
            ck[0] = '\0';
        const char *have = ck[0] ? pool__ckpt_id(pool, j, task) : NULL;
        if (have && !strcmp(have, ck)) /* asked again once the checkpoint is here: taken */
            return reply_json(r, 200, "{}"), true;
        if (ck[0] && pool__ckpt_fetching(pool, j, task)) /* still coming: ask again */
            return reply_json(r, 202, "{\"checkpoint\":\"being fetched\"}"), true;
    }
    /* A report of a task nobody holds for it: this peer restarted since it handed the task out (the
     * volunteer kept its result and reports it again), or the lease ended and the task waits still.
     * The run counts if the task still wants it (coord_adopt): nothing is run twice for a restart.
     * Only a report whose result signature verifies, and only from the worker whose lease ran out,
     * or from any in the POOL_ADOPT_WINDOW_MS after this peer's start (its leases from before are
     * forgotten): a key may not pick, at any time, a task it was never handed. */
    if (!strcmp(what, "done") && with_task && task < j->man.desc.tasks && j->state == POOL_JOB_RUNNING &&
        coord_holds(pool->coord, j->id, task, worker) != 0 && done_verifies(r, j, task, worker)) {
        char host[VOL_MAX_URL];
        uint64_t now = pool_now_ms();
        uint64_t window = lease_ms(pool) > POOL_ADOPT_WINDOW_MS ? lease_ms(pool) : POOL_ADOPT_WINDOW_MS;
        if (coord_worker_seen(pool->coord, worker, peer_host(peer, host, sizeof(host)), now) == 0 &&
            coord_adopt(pool->coord, j->id, task, worker, now < pool->started_ms + window, now, lease_ms(pool)) == 0)
            pool__note(pool, LOG_LEVEL_INFO, "job %s task %u: a result from %s, which held no lease on it here "
                       "(a lease from before a restart, or one that ended): taken as a lease", j->name, task, peer);
    }
    /* Who holds a lease is the core's to say: a key, whatever address it speaks from. 410: the job
     * is cancelled, so stop the task. */
    if (!with_task || task >= j->man.desc.tasks || coord_holds(pool->coord, j->id, task, worker) != 0) {
        if (j->state == POOL_JOB_CANCELLED)
            return reply_json(r, 410, "{\"error\":\"the job is cancelled\"}"), true;
        return reply_json(r, 409, "{\"error\":\"you hold no lease on that task\"}"), true;
    }
    char host[VOL_MAX_URL];
    coord_worker_seen(pool->coord, worker, peer_host(peer, host, sizeof(host)), pool_now_ms());
    if (!strcmp(what, "output")) /* a running task's live output: only from the lease's holder */
        return pool__live_handle(pool, r, j, task, worker), true;
    if (!strcmp(what, "renew")) {
        int rc = coord_renew(pool->coord, j->id, task, worker, pool_now_ms(), lease_ms(pool));
        return reply_json(r, rc ? 409 : 200, rc ? "{\"error\":\"lease lost\"}" : "{}"), true;
    }
    if (!strcmp(what, "release")) { /* leased but never started, or given back: no attempt is counted */
        if (ck[0] && start_ckpt_release(pool, j, task, peer, worker, ck, r))
            return true; /* answered: 202 (fetching it) or 503 (not now) */
        int rc = coord_release(pool->coord, j->id, task, worker);
        if (!rc) {
            log_info("job %s: task %u released by %s", j->name, task, peer);
            pool__jobs_kick(pool);
            pool__vol_offer(pool, j, NULL);
        }
        return reply_json(r, rc ? 409 : 200, rc ? "{\"error\":\"not running\"}" : "{}"), true;
    }
    return handle_done(pool, r, j, task, peer, worker), true;
}

/* The checkpoint a volunteer gave back with task is here (or could not be had): only now does the
 * task wait again, so its next run starts from it. The volunteer, asking again, is answered 200 if
 * it is here (it may then drop its copy), 409 if not (the task went on without it). */
static void on_release_ckpt(pool_t *pool, job_t *j, uint32_t task, int status, void *arg)
{
    char *worker = arg;
    int rc = pool->stopping || j->gone ? -ECANCELED : coord_release(pool->coord, j->id, task, worker);
    task_state_t st;
    if (!rc) {
        log_info("job %s: task %u released by %.16s...%s", j->name, task, worker, status ? " (its checkpoint "
                 "did not come: it starts from its last one, if any)" : " with its checkpoint");
        pool__jobs_kick(pool);
        pool__vol_offer(pool, j, NULL);
    } else if (!pool->stopping && !j->gone && coord_task(pool->coord, j->id, task, &st, NULL) == 0 &&
               st != TASK_WAITING && st != TASK_RUNNING) {
        pool__ckpt_drop(pool, j, task); /* its lease ran out meanwhile and it was decided: no run will want it */
    }
    free(worker);
    pool_job_unref(j);
}

/* A release that names a checkpoint (ck): fetched from the worker before the task waits again; r is
 * answered 202 at once (the volunteer asks again until 200 or 409), or 503 if the fetch cannot start
 * now (too many under way, or over --cache), the lease extended so that the volunteer can retry.
 * False if the id is bad or the job takes none: the task is released without it (r not answered). */
static bool start_ckpt_release(pool_t *pool, job_t *j, uint32_t task, const char *peer, const char *worker,
                               const char *ck, httpd_req_t *r)
{
    if (!pool__ckpt_valid_id(ck) || j->man.desc.replicas > 1 || pool->stopping) {
        log_warn("job %s task %u: the checkpoint named by %s is not taken (%s)", j->name, task, peer,
                 j->man.desc.replicas > 1 ? "a job with replicas carries none" : "a bad id");
        return false;
    }
    coord_renew(pool->coord, j->id, task, worker, pool_now_ms(), POOL_CKPT_LEASE_MS); /* time for the fetch */
    char *w = xstrdup(worker);
    pool_job_ref(j);
    int rc = pool__ckpt_fetch(pool, j, task, peer, ck, on_release_ckpt, w);
    if (rc) {
        free(w);
        pool_job_unref(j);
        log_info("job %s task %u: its checkpoint cannot be fetched now (%s): %s is asked to retry", j->name, task,
                 strerror(-rc), peer);
        reply_json(r, 503, "{\"error\":\"too many checkpoints are being fetched: retry\"}");
        return true;
    }
    reply_json(r, 202, "{\"checkpoint\":\"being fetched\"}");
    return true;
}

static void on_lease_expired(void *arg, const char *job_id, uint32_t task, const char *worker)
{
    pool_t *pool = arg;
    job_t *j = local_job(pool, job_id);
    const char *url = worker_url(pool, worker);
    if (j)
        pool__note(pool, LOG_LEVEL_WARN, "job %s task %u: the lease of %s (key %.16s...) expired: the task waits "
                   "for another peer", j->name, task, url ? url : "?", worker);
}

static void on_peer_lease_lost(void *arg, const char *job_id, uint32_t task, const char *worker)
{
    pool_t *pool = arg;
    job_t *j = local_job(pool, job_id);
    const char *url = worker_url(pool, worker);
    if (j)
        pool__note(pool, LOG_LEVEL_INFO, "job %s task %u: %s (key %.16s...) left the pool: the task waits for "
                   "another peer", j->name, task, url ? url : "?", worker);
}

/* Leases of our jobs were lost or ran out: a job whose last attempt that was may be over now; the
 * others' tasks wait again, for our slots and for the pool. */
static void own_jobs_again(pool_t *pool)
{
    for (job_t *j = pool->joblist; j; j = j->next) {
        if (j->remote || !j->published || j->gone)
            continue;
        pool__job_check_over(j);
        pool__vol_offer(pool, j, NULL);
    }
    pool__jobs_kick(pool);
}

void pool__vol_peer_dropped(pool_t *pool, const char *url)
{
    key_pub_t k;
    if (!pool__bound_key(pool, url, &k))
        return;
    char worker[KEY_PUB_HEX_LEN + 1];
    key_pub_to_hex(&k, worker);
    uint64_t seen = 0;
    /* Our polls to it fail, but it has spoken to us within the pool's drop window (a lease, a
     * renew, a report): it is alive behind a one-way path, and its leases stay its own. */
    if (coord_worker_known(pool->coord, worker, &seen) && seen + VOL_ALIVE_MS > pool_now_ms())
        return;
    if (coord_worker_drop(pool->coord, worker, on_peer_lease_lost, pool) > 0)
        own_jobs_again(pool);
}

void pool__vol_cancel_lease(void *arg, const char *job_id, uint32_t task, const char *worker)
{
    pool_t *pool = arg;
    if (!strcmp(worker, POOL_SELF) || !pool->fetch || pool->stopping)
        return; /* our own slots are cancelled by the caller */
    const char *url = worker_url(pool, worker);
    if (url) /* if that fails, the volunteer still learns of it at its next renew (410) */
        send_signed(pool, url, xasprintf("/v1/cancel/%s/%u?peer=%s", job_id, task, pool->opts.http_url));
}

/* Every second: leases of vanished volunteers expire (their tasks are offered again), the leases of
 * the tasks running here are renewed, and free slots ask for work. */
static void on_lease_timer(uv_timer_t *t)
{
    pool_t *pool = t->data;
    if (pool->stopping)
        return;
    /* Volunteers not heard from for three lease times are forgotten (their leases expired already). */
    coord_drop_silent(pool->coord, pool_now_ms(), 3 * lease_ms(pool), POOL_SELF, on_peer_lease_lost, pool);
    if (coord_expire(pool->coord, pool_now_ms(), on_lease_expired, pool) > 0)
        own_jobs_again(pool);
    cands_sweep(pool);
    vol_tick(pool);
    pool__live_tick(pool);
}

void pool__vol_start(pool_t *pool)
{
    pool->lease_timer = xcalloc(1, sizeof(*pool->lease_timer));
    uv_timer_init(pool->loop, pool->lease_timer);
    pool->lease_timer->data = pool;
    uv_timer_start(pool->lease_timer, on_lease_timer, 1000, 1000);
}

void pool__vol_stop(pool_t *pool)
{
    if (pool->lease_timer)
        uv_close((uv_handle_t *)pool->lease_timer, pool__handle_free);
    pool->lease_timer = NULL;
    while (pool->relretries) { /* stopping: those releases are not asked again */
        relretry_t *k = pool->relretries;
        pool->relretries = k->next;
        pool->reports_pending--;
        pool_job_unref(k->job);
        uv_close((uv_handle_t *)&k->timer, relretry_closed);
    }
    while (pool->cands)
        cand_unlink_free(pool->cands);
    pool__vol_outbox_free(pool);
}

void pool__vol_outbox_free(pool_t *pool)
{
    while (pool->outbox) { /* their rows stay: the next start takes them back */
        struct outbox *o = pool->outbox;
        pool->outbox = o->next;
        outbox_free(o);
    }
}
