/*
 * live.c: a running task's live output (docs/usage.md, "Live output"), on the loop thread; the
 * rules are pool/liveout.h's, the files are read and written in the thread pool.
 *
 * On the peer that runs a task, its output is its stdout and stderr files in DATA/work/, which
 * the view shows as they grow (pool_task_live). A volunteer also sends what they gained to the
 * task's submitter, every POOL_LIVE_EVERY_MS while the task runs: a signed POST
 * /v1/output/<job>/<task> whose query (pool/wire.h, wire_output_t) says which run it is, where the
 * bytes of each stream start and how many, and the SHA-256 of the body (so the signature covers
 * the bytes); one update at a time per task, the newest WIRE_MAX_OUTPUT_CHUNK bytes of each stream
 * (liveout_pick). An update not answered 200 is made again (the submitter drops what it has), but
 * a refusal (the lease is gone, another replica's output is shown, a bad update) stops them for
 * that run.
 *
 * The submitter takes an update only from the key that holds the task's lease (volunteer.c checks
 * it: 409 otherwise), writes it into its live copy, DATA/live/<job>.<task>.<n>.stdout and
 * .stderr (liveout_apply: the first LIVEOUT_HEAD bytes, then the last LIVEOUT_TAIL; at most
 * POOL_MAX_LIVE tasks at once, and --max-live bytes of copies in all: pool->live_bytes counts what
 * they hold on disk and, while an update or a completion is written, the most it can add), and
 * shows that copy while the worker holds the lease. The copies are never fsync'ed: they are a view,
 * and live/ is emptied at every start. Of a task
 * with replicas, the output of the first holder to send is kept: the others get 409 while it holds
 * its lease. Another run (another worker, or the same one starting the task again) starts a new
 * copy; the old one is removed. Once the lease is gone or the task decided, the copy goes (each
 * second, pool__live_tick).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "pool/internal.h"
#include "pool/liveout.h"
#include "pool/wire.h"

static const liveout_keep_t live_keep = {.head = LIVEOUT_HEAD, .tail = LIVEOUT_TAIL};

/* An update's body (both streams) must fit what the volunteer's POST sends and the server takes. */
_Static_assert(2ull * WIRE_MAX_OUTPUT_CHUNK <= FETCH_MAX_POST_BODY, "an update's body over FETCH_MAX_POST_BODY");
_Static_assert(2ull * WIRE_MAX_OUTPUT_CHUNK <= HTTPD_DEFAULT_MAX_BODY, "an update's body over the server's cap");

/* ---- the peer that runs a task ---- */

static running_t *running_of(pool_t *pool, const job_t *j, uint32_t task)
{
    for (running_t *r = pool->running; r; r = r->next)
        if (r->job == j && r->task == task)
            return r;
    return NULL;
}

/* ---- the submitter's copies ---- */

typedef struct live {
    job_t *job; /* held */
    uint32_t task;
    char worker[KEY_PUB_HEX_LEN + 1];
    uint64_t run;          /* the volunteer's number of the run */
    uint64_t seq;          /* ours: the copy's files, and its run for the view */
    char *path[2];
    liveout_file_t f[2];
    bool busy;             /* an update is being written (thread pool) */
    bool dropped;          /* out of the list: freed once that write lands */
    bool finish;           /* its task is decided: the copy is completed from the result before it goes */
    struct live *next;
} live_t;

/* Bytes a copy holds on disk. */
static uint64_t live_size(const liveout_file_t f[2]) { return f[0].len + f[1].len; }

static uint64_t live_cap(const pool_t *pool)
{
    return pool->opts.max_live_bytes ? pool->opts.max_live_bytes : POOL_MAX_LIVE_BYTES;
}

/* Whether n more bytes fit under the cap: then they are counted (given back by the caller). */
static bool live_reserve(pool_t *pool, uint64_t n)
{
    uint64_t cap = live_cap(pool);
    if (pool->live_bytes > cap || n > cap - pool->live_bytes)
        return false;
    pool->live_bytes += n;
    return true;
}

static live_t *live_find(pool_t *pool, const job_t *j, uint32_t task)
{
    for (live_t *l = pool->lives; l; l = l->next)
        if (l->job == j && l->task == task)
            return l;
    return NULL;
}

static void live_finish(pool_t *pool, live_t *l, uint64_t reserved);

static void live_free(pool_t *pool, live_t *l)
{
    if (l->finish && !pool->stopping && !l->job->gone) {
        /* completed (frees it once done) if what it can still grow by fits under --max-live */
        uint64_t need = 2 * LIVEOUT_MAX_FILE(&live_keep) - live_size(l->f);
        if (live_reserve(pool, need))
            return live_finish(pool, l, need);
        log_info("job %s task %u: its live output is not completed from the result (--max-live is reached)",
                 l->job->name, l->task);
    }
    pool->live_bytes -= live_size(l->f);
    if (!pool->stopping) /* stopping: live/ is emptied at the next start */
        pool__rm_later(pool, l->path[0], l->path[1]);
    else {
        free(l->path[0]);
        free(l->path[1]);
    }
    pool_job_unref(l->job);
    free(l);
}

/* Takes l out of the list; it is freed now, or once the update being written lands. finish: its
 * task is decided (a reader of the copy gets the rest of the output before the copy goes). */
static void live_drop(pool_t *pool, live_t *l, bool finish)
{
    l->finish = finish;
    for (live_t **pp = &pool->lives; *pp; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    }
    pool->n_lives--;
    l->next = NULL;
    l->dropped = true;
    if (!l->busy)
        live_free(pool, l);
}

int pool_task_live(pool_t *pool, pool_job_t *j, uint32_t task, pool_live_t *out)
{
    running_t *r = running_of(pool, j, task);
    if (r) {
        *out = (pool_live_t){.run = r->run, .path = {r->out_path, r->err_path}};
        return 0;
    }
    live_t *l = j->remote ? NULL : live_find(pool, j, task);
    if (!l)
        return -ENOENT;
    /* What live_sweep removes within a second is not shown meanwhile: a copy of a task not decided
     * whose job is over (cancelled: rm -r of a running job) or whose worker lost the lease. */
    task_state_t st = TASK_WAITING;
    if (coord_task(pool->coord, j->id, task, &st, NULL) != 0)
        return -ENOENT;
    if (st != TASK_SUCCEEDED && st != TASK_FAILED &&
        (pool_job_over(j) || coord_holds(pool->coord, j->id, task, l->worker) != 0))
        return -ENOENT;
    *out = (pool_live_t){.run = l->seq, .path = {l->path[0], l->path[1]}};
    return 0;
}

void pool_live_foreach(pool_t *pool, pool_job_t *j, void (*cb)(void *arg, uint32_t task), void *arg)
{
    for (running_t *r = pool->running; r; r = r->next)
        if (r->job == j) /* a peer never runs a task twice at once */
            cb(arg, r->task);
    for (live_t *l = pool->lives; l; l = l->next)
        if (l->job == j && !running_of(pool, j, l->task))
            cb(arg, l->task);
}

/* An update being written into a copy, in the thread pool. */
typedef struct lwrite {
    uv_work_t req;
    pool_t *pool;
    live_t *l;
    httpd_req_t *r; /* deferred: answered from lwrite_done */
    wire_output_t o;
    char *body;
    size_t blen;
    liveout_file_t f[2]; /* the copy's files: as they were, then as they are (each once written) */
    uint64_t reserved;   /* counted in pool->live_bytes until it lands: the most it adds */
    int rc;
    char why[160];
} lwrite_t;

/* Thread pool: one stream's bytes into its file (the tail read first if it is past its head); *f
 * becomes what the file is only once it is written. */
static int write_stream(const char *path, liveout_file_t *f, uint64_t off, const char *data, size_t len, char *why,
                        size_t whylen)
{
    char mark[LIVEOUT_MAX_MARK];
    size_t mlen = liveout_mark(&live_keep, mark, sizeof(mark));
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        int rc = -errno;
        snprintf(why, whylen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    int rc = 0;
    char *win = NULL;
    size_t wlen = 0;
    liveout_file_t nf = *f;
    if (f->windowed) {
        uint64_t from = (uint64_t)live_keep.head + mlen;
        wlen = f->len > from ? (size_t)(f->len - from) : 0;
        win = xmalloc(wlen ? wlen : 1);
        ssize_t got = pread(fd, win, wlen, (off_t)from);
        if (got != (ssize_t)wlen)
            rc = got < 0 ? -errno : -EIO;
    }
    liveout_write_t w = {0};
    if (!rc)
        rc = liveout_apply(&live_keep, &nf, win, wlen, off, data, len, &w);
    if (!rc && w.len) {
        ssize_t put = pwrite(fd, w.buf, w.len, (off_t)w.at);
        if (put != (ssize_t)w.len)
            rc = put < 0 ? -errno : -EIO;
        else if (ftruncate(fd, (off_t)w.new_len) != 0)
            rc = -errno;
    }
    if (rc)
        snprintf(why, whylen, "%s: %s", path, strerror(-rc));
    else
        *f = nf;
    free(w.buf);
    free(win);
    close(fd);
    return rc;
}

static void lwrite_work(uv_work_t *req)
{
    lwrite_t *w = req->data;
    hash_t h;
    char hex[HASH_HEX_LEN + 1];
    hash_sha256(w->body, w->blen, &h);
    hash_to_hex(&h, hex);
    if (strcmp(hex, w->o.sha) != 0) {
        w->rc = -EBADMSG;
        snprintf(w->why, sizeof(w->why), "the body's SHA-256 is not sha=");
        return;
    }
    const char *data = w->body;
    for (int i = 0; i < 2 && !w->rc; i++) {
        if (w->o.len[i])
            w->rc = write_stream(w->l->path[i], &w->f[i], w->o.off[i], data, w->o.len[i], w->why, sizeof(w->why));
        data += w->o.len[i];
    }
}

static void reply_json(httpd_req_t *r, unsigned code, const char *text)
{
    httpd_reply(r, code, "application/json", text, strlen(text));
}

static void lwrite_done(uv_work_t *req, int status)
{
    lwrite_t *w = req->data;
    pool_t *pool = w->pool;
    live_t *l = w->l;
    pool->pending_work--;
    l->busy = false;
    pool->live_bytes += live_size(w->f);
    pool->live_bytes -= live_size(l->f) + w->reserved;
    memcpy(l->f, w->f, sizeof(l->f)); /* what was written (a dropped copy may still be completed) */
    if (w->rc == -EBADMSG) {
        reply_json(w->r, 400, "{\"error\":\"the body is not what sha= names\"}");
    } else if (w->rc) {
        log_warn("job %s task %u: live output not kept: %s", l->job->name, l->task, w->why);
        reply_json(w->r, 500, "{\"error\":\"not kept here\"}");
    } else {
        reply_json(w->r, 200, "{}");
    }
    if (l->dropped)
        live_free(pool, l);
    free(w->body);
    free(w);
}

void pool__live_handle(pool_t *pool, httpd_req_t *r, job_t *j, uint32_t task, const char *worker)
{
    if (strcmp(httpd_req_method(r), "POST") != 0)
        return reply_json(r, 405, "{\"error\":\"output is sent with POST\"}");
    size_t qlen = 0, blen = 0;
    const char *q = httpd_req_query(r, &qlen);
    const void *body = httpd_req_body(r, &blen);
    wire_output_t o;
    char why[128];
    if (wire_output_decode(q, qlen, &o, why, sizeof(why)) != 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "{\"error\":\"%s\"}", why);
        return reply_json(r, 400, msg);
    }
    if (blen != (size_t)o.len[0] + o.len[1])
        return reply_json(r, 400, "{\"error\":\"the body is not outlen + errlen bytes\"}");
    live_t *l = live_find(pool, j, task);
    if (l && strcmp(l->worker, worker) != 0) { /* replicas: the first holder's output is shown */
        if (coord_holds(pool->coord, j->id, task, l->worker) == 0)
            return reply_json(r, 409, "{\"error\":\"another replica's output is shown live\"}");
        live_drop(pool, l, false);
        l = NULL;
    }
    /* A volunteer numbers its runs in order: an update of an earlier run than the copy's is one that
     * was late (sent before that run ended); it must not replace the run that is shown. */
    if (l && o.run < l->run)
        return reply_json(r, 409, "{\"error\":\"an earlier run's output: a later run is shown\"}");
    if (l && l->run != o.run) { /* the worker runs the task again: its last run's copy goes */
        live_drop(pool, l, false);
        l = NULL;
    }
    if (!l) {
        if (pool->n_lives >= POOL_MAX_LIVE)
            return reply_json(r, 503, "{\"error\":\"too many tasks' live output is kept here\"}");
        l = xcalloc(1, sizeof(*l));
        l->job = j;
        pool_job_ref(j);
        l->task = task;
        snprintf(l->worker, sizeof(l->worker), "%s", worker);
        l->run = o.run;
        l->seq = ++pool->stage_seq;
        for (int i = 0; i < 2; i++)
            l->path[i] = xasprintf("%s/live/%s.%u.%" PRIu64 ".%s", pool->data_dir, j->id, task, l->seq,
                                   i ? "stderr" : "stdout");
        l->next = pool->lives;
        pool->lives = l;
        pool->n_lives++;
    }
    if (l->busy) /* the volunteer sends one at a time: this is a stale one sent again */
        return reply_json(r, 503, "{\"error\":\"an update of this task is being written: retry\"}");
    if (blen == 0)
        return reply_json(r, 200, "{}");
    uint64_t reserve = 0;
    for (int i = 0; i < 2; i++)
        reserve += o.len[i] ? LIVEOUT_MAX_GROWTH(o.len[i]) : 0;
    if (!live_reserve(pool, reserve))
        return reply_json(r, 503, "{\"error\":\"the live output kept here is at its cap (--max-live): retry\"}");
    lwrite_t *w = xcalloc(1, sizeof(*w));
    w->req.data = w;
    w->pool = pool;
    w->l = l;
    w->o = o;
    w->body = xmalloc(blen);
    memcpy(w->body, body, blen);
    w->blen = blen;
    w->reserved = reserve;
    memcpy(w->f, l->f, sizeof(w->f));
    w->r = httpd_defer(r);
    l->busy = true;
    pool->pending_work++;
    uv_queue_work(pool->loop, &w->req, lwrite_work, lwrite_done);
}

/* Submitter: copies whose worker lost the lease, or whose task is decided or job gone, go. */
static void live_sweep(pool_t *pool)
{
    for (live_t *l = pool->lives, *next; l; l = next) {
        next = l->next;
        job_t *j = l->job;
        task_state_t st = TASK_WAITING;
        if (j->gone || !j->published || coord_task(pool->coord, j->id, l->task, &st, NULL) != 0)
            live_drop(pool, l, false);
        else if (st == TASK_SUCCEEDED || st == TASK_FAILED) /* its result is in results/ (a replica's, if one agreed) */
            live_drop(pool, l, j->man.desc.replicas == 1);
        else if (pool_job_over(j) || coord_holds(pool->coord, j->id, l->task, l->worker) != 0)
            live_drop(pool, l, false);
    }
}

/*
 * A decided task's copy, before it goes: what the result's stdout and stderr hold past what came
 * live is written into it (the first and last bytes as any update: liveout_apply), so a reader
 * holding it open (tail -f) reads on to the end of the output, as it would on the peer that ran it.
 * Then the copy is removed (the reader keeps its open file).
 */
typedef struct lfinish {
    uv_work_t req;
    pool_t *pool;
    live_t *l;
    char *result[2];
    uint64_t reserved; /* counted in pool->live_bytes with the copy's bytes (size), until the copy is gone */
    uint64_t size;
} lfinish_t;

/* Thread pool: [from, to) of the result file fd into the copy, in chunks. */
static int finish_range(int fd, const char *copy, liveout_file_t *f, uint64_t from, uint64_t to, char *buf)
{
    char why[160];
    for (uint64_t off = from; off < to;) {
        size_t want = to - off < WIRE_MAX_OUTPUT_CHUNK ? (size_t)(to - off) : WIRE_MAX_OUTPUT_CHUNK;
        ssize_t got = pread(fd, buf, want, (off_t)off);
        if (got <= 0)
            return got < 0 ? -errno : 0;
        int rc = write_stream(copy, f, off, buf, (size_t)got, why, sizeof(why));
        if (rc)
            return rc;
        off += (uint64_t)got;
    }
    return 0;
}

static void lfinish_work(uv_work_t *req)
{
    lfinish_t *w = req->data;
    live_t *l = w->l;
    char *buf = xmalloc(WIRE_MAX_OUTPUT_CHUNK);
    for (int i = 0; i < 2; i++) {
        int fd = open(w->result[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size > l->f[i].next &&
            (uint64_t)st.st_size <= WIRE_MAX_OUTPUT_OFF) {
            /* bounded: what fits in its head, then its last bytes (a gap between: a skip line) */
            uint64_t size = (uint64_t)st.st_size, from = l->f[i].next;
            uint64_t room = l->f[i].windowed ? 0 : live_keep.head - l->f[i].len;
            uint64_t head_to = size - from < room ? size : from + room;
            uint64_t tail_from = size - head_to > live_keep.tail ? size - live_keep.tail : head_to;
            if (finish_range(fd, l->path[i], &l->f[i], from, head_to, buf) == 0)
                finish_range(fd, l->path[i], &l->f[i], tail_from, size, buf);
        }
        if (fd >= 0)
            close(fd);
        unlink(l->path[i]);
    }
    free(buf);
}

static void lfinish_done(uv_work_t *req, int status)
{
    lfinish_t *w = req->data;
    pool_t *pool = w->pool;
    live_t *l = w->l;
    pool->pending_work--;
    pool->live_bytes -= w->reserved + w->size;
    for (int i = 0; i < 2; i++) {
        free(w->result[i]);
        free(l->path[i]);
    }
    pool_job_unref(l->job);
    free(l);
    free(w);
}

static void live_finish(pool_t *pool, live_t *l, uint64_t reserved)
{
    lfinish_t *w = xcalloc(1, sizeof(*w));
    w->req.data = w;
    w->pool = pool;
    w->l = l;
    w->reserved = reserved;
    w->size = live_size(l->f); /* (the thread pool changes l->f) */
    for (int i = 0; i < 2; i++)
        w->result[i] = xasprintf("%s/results/%s/%u/%s", pool->data_dir, l->job->id, l->task, i ? "stderr" : "stdout");
    pool->pending_work++;
    uv_queue_work(pool->loop, &w->req, lfinish_work, lfinish_done);
}

void pool__live_stop(pool_t *pool)
{
    while (pool->lives)
        live_drop(pool, pool->lives, false);
}

/* ---- the volunteer: sending ---- */

typedef struct lsend {
    uv_work_t req;
    pool_t *pool;
    job_t *job; /* held */
    uint32_t task;
    uint64_t run;
    char *path[2];
    uint64_t sent[2];
    wire_output_t o;
    char *body; /* o.len[0] bytes of stdout, then o.len[1] of stderr */
} lsend_t;

static void lsend_free(lsend_t *s)
{
    s->pool->live_sending--;
    pool_job_unref(s->job);
    free(s->path[0]);
    free(s->path[1]);
    free(s->body);
    free(s);
}

/* The run s was made for, if it still runs here. */
static running_t *lsend_running(lsend_t *s)
{
    running_t *r = running_of(s->pool, s->job, s->task);
    return r && r->run == s->run ? r : NULL;
}

/* Thread pool: the new bytes of each stream (the newest chunk), and the SHA-256 of them. */
static void lsend_work(uv_work_t *req)
{
    lsend_t *s = req->data;
    s->body = xmalloc(2 * (size_t)WIRE_MAX_OUTPUT_CHUNK);
    size_t at = 0;
    for (int i = 0; i < 2; i++) {
        int fd = open(s->path[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        uint64_t off = s->sent[i];
        uint32_t len = 0;
        if (fd >= 0 && fstat(fd, &st) == 0)
            liveout_pick(s->sent[i], (uint64_t)st.st_size, WIRE_MAX_OUTPUT_CHUNK, &off, &len);
        ssize_t got = len ? pread(fd, s->body + at, len, (off_t)off) : 0;
        if (fd >= 0)
            close(fd);
        s->o.off[i] = off > WIRE_MAX_OUTPUT_OFF ? WIRE_MAX_OUTPUT_OFF : off;
        s->o.len[i] = got > 0 && off <= WIRE_MAX_OUTPUT_OFF - (uint64_t)got ? (uint32_t)got : 0;
        at += s->o.len[i];
    }
    hash_t h;
    hash_sha256(s->body, at, &h);
    hash_to_hex(&h, s->o.sha);
}

static void on_sent(int status, unsigned code, const char *body, size_t len, void *arg)
{
    lsend_t *s = arg;
    running_t *r = lsend_running(s);
    if (r) {
        r->live_busy = false;
        if (status == 0 && code == 200) {
            for (int i = 0; i < 2; i++)
                if (s->o.len[i])
                    r->live_sent[i] = s->o.off[i] + s->o.len[i];
        } else if (status == 0 && (code == 400 || code == 403 || code == 404 || code == 405 || code == 409 ||
                                   code == 410 || code == 413)) {
            /* refused: the lease is gone, another replica's output is shown, a bad update (any other
             * answer, 429 or 503 say, and no answer: the same bytes go again next time) */
            r->live_stopped = true;
            log_info("job %s task %u: its submitter takes no more of its live output (%u: %.*s)", s->job->name,
                     s->task, code, (int)(len < 160 ? len : 160), body ? body : "");
        }
    }
    lsend_free(s);
}

static void lsend_done(uv_work_t *req, int status)
{
    lsend_t *s = req->data;
    pool_t *pool = s->pool;
    pool->pending_work--;
    running_t *r = lsend_running(s);
    if (!r || pool->stopping || s->job->gone || !s->job->n_peers || s->o.len[0] + s->o.len[1] == 0) {
        if (r)
            r->live_busy = false;
        return lsend_free(s);
    }
    char q[256];
    int qn = wire_output_encode(&s->o, q, sizeof(q));
    char *target = qn > 0 ? xasprintf("/v1/output/%s/%u?peer=%s%s", s->job->id, s->task, pool->opts.http_url, q)
                          : NULL;
    int rc = target ? pool__spost(pool, s->job->peers[0], target, s->body, (size_t)s->o.len[0] + s->o.len[1], 4096,
                                  on_sent, s)
                    : -EINVAL;
    free(target);
    if (rc) {
        log_debug("job %s task %u: its live output is not sent now: %s", s->job->name, s->task, strerror(-rc));
        r->live_busy = false;
        lsend_free(s);
    }
}

/*
 * Volunteer: each remote task running here sends what its output gained, every POOL_LIVE_EVERY_MS,
 * at most POOL_LIVE_MAX_SENDING updates at once: they share the connections to the submitter (and
 * the uplink) with the renews and reports that keep the leases, which must never wait behind a
 * crowd of them. A task left out is due at the next tick (the others just sent are not).
 */
static void live_send(pool_t *pool)
{
    uint64_t now = pool_now_ms();
    for (running_t *r = pool->running; r && pool->live_sending < POOL_LIVE_MAX_SENDING; r = r->next) {
        if (!r->remote || !r->et || r->live_busy || r->live_stopped || !r->job->n_peers || r->job->gone ||
            now - r->live_last_ms < POOL_LIVE_EVERY_MS)
            continue;
        r->live_last_ms = now;
        r->live_busy = true;
        pool->live_sending++;
        lsend_t *s = xcalloc(1, sizeof(*s));
        s->req.data = s;
        s->pool = pool;
        s->job = r->job;
        pool_job_ref(r->job);
        s->task = r->task;
        s->run = r->run;
        s->o.run = r->run > WIRE_MAX_RUN ? WIRE_MAX_RUN : r->run;
        s->path[0] = xstrdup(r->out_path);
        s->path[1] = xstrdup(r->err_path);
        memcpy(s->sent, r->live_sent, sizeof(s->sent));
        pool->pending_work++;
        uv_queue_work(pool->loop, &s->req, lsend_work, lsend_done);
    }
}

void pool__live_tick(pool_t *pool)
{
    if (pool->stopping)
        return;
    live_sweep(pool);
    live_send(pool);
}
